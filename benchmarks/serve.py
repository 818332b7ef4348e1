"""End-to-end throughput and latency of `cascadeprune serve` over HTTP and MQTT, loopback only.

Each artifact gets its own fresh `cascadeprune serve` process (HTTP and MQTT on one model, as
deployed) and one Mosquitto broker serves them all, with the no-loss settings the README gives.
Clients are closed loops: at concurrency C there are always C requests (or MQTT messages) waiting
for their answer; latency runs from sending to receiving the answer. Artifacts are measured in
turn within each (transport, concurrency) cell, so a slow spell on a shared machine hits all of
them. Every run is bounded by --requests and --max-seconds. One JSON record per (artifact,
transport, concurrency) goes to benchmarks/results/serve.jsonl.

``--ui-compare`` adds a second service per artifact started with ``--no-ui`` and measures the HTTP
rows of both in turn: the requests name a device (so the page's board records each window) and,
for the service with the page on, a poller reads /v1/status and /v1/devices once a second as an
open page does. Records carry ``"ui": true/false``.

    python -m benchmarks.serve deploy/gpt2-deep-dense deploy/gpt2-deep-13.8x --concurrency 1 8
    python -m benchmarks.serve deploy/gpt2-deep-13.8x --ui-compare --no-mqtt
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks._common import RESULTS_DIR, append_records, load_records, md_head, newest, provenance
from cascadeprune.serve.ports import free_port, wait_port

RESULTS = RESULTS_DIR / "serve.jsonl"
PREFIX = "bench"
BROKERS = {  # mosquitto.conf lines beyond the listener. set_tcp_nodelay: without it (and TCP_NODELAY on the
    # clients' sockets) Nagle's algorithm meets delayed ACKs and messages wait ~40 ms at concurrency 8
    "no-loss": ["persistence true", "autosave_interval 1", "autosave_on_changes true", "max_queued_messages 0",
                "set_tcp_nodelay true"],  # the README's settings: a broker restart loses nothing
    "no-persistence": ["set_tcp_nodelay true"],  # what the no-loss settings cost
}


def start_broker(folder: Path, kind: str) -> tuple[subprocess.Popen, int]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.access(binary, os.X_OK):
        raise SystemExit("mosquitto is not installed: apt-get install mosquitto (or pass --no-mqtt)")
    port = free_port()
    conf = [f"listener {port} 127.0.0.1", "allow_anonymous true", f"persistence_location {folder}/",
            *BROKERS[kind]] + (["user root"] if os.geteuid() == 0 else [])
    (folder / "mosquitto.conf").write_text("\n".join(conf) + "\n")
    proc = subprocess.Popen([binary, "-c", str(folder / "mosquitto.conf")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_port(port, timeout=60.0)
    return proc, port


class Server:
    """A fresh `cascadeprune serve` process for one artifact."""

    def __init__(self, artifact: str, broker_port: int | None, threads: int, max_batch: int, tag: str,
                 ui: bool = True):
        self.prefix = f"{PREFIX}/{tag}"  # one prefix per service: each must see only its own windows
        self.artifact, self.ui = artifact, ui
        self.port = free_port()
        cmd = [sys.executable, "-m", "cascadeprune", "serve", artifact, "--http", f"127.0.0.1:{self.port}",
               "--threads", str(threads), "--max-batch", str(max_batch), "--max-body-bytes", str(1 << 24)]
        if not ui:
            cmd.append("--no-ui")
        if broker_port:
            cmd += ["--mqtt", f"mqtt://127.0.0.1:{broker_port}", "--topic-prefix", self.prefix, "--client-id", tag]
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        self.subscribed = threading.Event()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        wait_port(self.port, timeout=60.0)
        if broker_port and not self.subscribed.wait(30):
            raise SystemExit(f"{artifact}: the service did not subscribe:\n" + "".join(self.log[-5:]))

    def _read(self):
        for line in iter(self.proc.stderr.readline, ""):
            self.log.append(line)
            if '"event": "subscribed"' in line:
                self.subscribed.set()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def summary(lat: list[float], errors: int, wall: float) -> dict:
    ms = np.array(lat) * 1e3
    p50, p90, p99 = (np.percentile(ms, [50, 90, 99]) if len(ms) else (float("nan"),) * 3)
    return {"requests": len(lat), "errors": errors, "wall_s": round(wall, 3),
            "throughput_per_s": round(len(lat) / wall, 1) if wall else None,
            "p50_ms": round(float(p50), 3), "p90_ms": round(float(p90), 3), "p99_ms": round(float(p99), 3)}


class PagePoller:
    """What an open operator page asks: /v1/status and /v1/devices once a second, while a cell runs."""

    def __init__(self, port: int, every_s: float = 1.0):
        self.port, self.every_s, self.stop_ = port, every_s, threading.Event()
        self.polls = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import httpx

        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10) as c:
            while not self.stop_.wait(self.every_s):
                for path in ("/v1/status", "/v1/devices"):
                    c.get(path).raise_for_status()
                self.polls += 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_.set()
        self.thread.join(15)


def bench_http(port: int, bodies: list[bytes], conc: int, n: int, max_s: float, warmup: int) -> dict:
    import httpx

    lat: list[float] = []
    errors = 0

    async def run():
        nonlocal errors
        limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60, limits=limits) as ac:
            for i in range(warmup):
                await ac.post("/v1/predict", content=bodies[i % len(bodies)], headers=JSON)
            deadline = time.perf_counter() + max_s
            counter = iter(range(n))

            async def worker():
                nonlocal errors
                for i in counter:
                    if time.perf_counter() > deadline:
                        return
                    t0 = time.perf_counter()
                    r = await ac.post("/v1/predict", content=bodies[i % len(bodies)], headers=JSON)
                    if r.status_code == 200:
                        lat.append(time.perf_counter() - t0)
                    else:
                        errors += 1

            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(conc)))
            return time.perf_counter() - t0

    wall = asyncio.run(run())
    return summary(lat, errors, wall)


JSON = {"content-type": "application/json"}


def bench_mqtt(broker_port: int, prefix: str, bodies: list[list[float]], conc: int, n: int, max_s: float,
               warmup: int) -> dict:
    """Closed loop over the broker: ``conc`` messages outstanding, the next sent when an answer lands."""
    import paho.mqtt.client as mqtt

    sent: dict[str, float] = {}
    lat: list[float] = []
    errors = 0
    done = threading.Event()
    lock = threading.Lock()
    state = {"next": 0, "deadline": float("inf"), "total": warmup + n}
    device = f"sensor-c{conc}"  # ids differ per run: the service answers an id once per device
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-client-{os.getpid()}", clean_session=True,
                    protocol=mqtt.MQTTv311)
    subscribed = threading.Event()

    def send():
        with lock:
            i = state["next"]
            if i >= state["total"] or time.perf_counter() > state["deadline"]:
                if not sent:
                    done.set()
                return
            state["next"] += 1
            if i == warmup:
                state["deadline"] = time.perf_counter() + max_s
                state["t0"] = time.perf_counter()
            key = f"{device}-{i}"
            sent[key] = time.perf_counter()
        c.publish(f"{prefix}/{device}/vibration", json.dumps({"id": key, "signal": bodies[i % len(bodies)]}), qos=1)

    def on_message(client, userdata, msg):
        nonlocal errors
        d = json.loads(msg.payload)
        with lock:
            t0 = sent.pop(d["id"], None)
            if t0 is None:
                return  # a QoS-1 duplicate
            i = int(d["id"].rsplit("-", 1)[1])
            if msg.topic.endswith("/error"):
                errors += 1
                if errors == 1:
                    print(f"first error: {d['error']}", file=sys.stderr)
            elif i >= warmup:
                lat.append(time.perf_counter() - t0)
        send()

    c.on_message = on_message
    c.on_socket_open = lambda cl, u, sock: sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.on_subscribe = lambda *a: subscribed.set()
    c.connect("127.0.0.1", broker_port)
    c.subscribe([(f"{prefix}/{device}/diagnosis", 1), (f"{prefix}/{device}/error", 1)])
    c.loop_start()
    subscribed.wait(10)
    for _ in range(conc):
        send()
    done.wait(max_s + 120)
    wall = time.perf_counter() - state.get("t0", time.perf_counter())
    c.disconnect()
    c.loop_stop()
    return summary(lat, errors, wall)


def table(path: Path) -> str:
    """Markdown: one row per (transport, broker, concurrency), one column per model, newest records."""
    def name(r: dict) -> str:
        return (f"{Path(r['artifact']).name} ({r['block_compression_ratio']:.1f}x{', int8' if r.get('int8') else ''}"
                f"{', no UI' if r.get('ui') is False else ''})")

    cells = newest(load_records(path), lambda r: (r["transport"], r.get("broker") or "", r["concurrency"], name(r)))
    models = list(dict.fromkeys(k[3] for k in cells))
    rows = sorted({k[:3] for k in cells})
    out = md_head(["transport", "broker", "concurrency", *(f"{m}: per s, p50 / p99 ms" for m in models)])
    for t, b, c in rows:
        vals = [cells.get((t, b, c, m)) for m in models]
        out.append(f"| {t} | {b.replace('mosquitto ', '') or '–'} | {c} | " + " | ".join(
            "–" if v is None else f"{v['throughput_per_s']:.0f}, {v['p50_ms']:.1f} / {v['p99_ms']:.1f}"
            + (f" ({v['errors']} errors)" if v["errors"] else "") for v in vals) + " |")
    return "\n".join(out)


def ui_table(path: Path) -> str:
    """The operator page's cost: per artifact and concurrency, each --ui-compare run's HTTP throughput and p50
    with the page on (and polled) over the same service with --no-ui, the ratios, and their medians over runs."""
    import statistics

    pairs: dict[tuple, dict] = {}
    for r in load_records(path):
        if r["transport"] == "http" and r.get("ui") is not None and "--ui-compare" in r.get("command", ""):
            first = "no-UI first" if "--noui-first" in r["command"] else "page first"
            pairs.setdefault((r["artifact"], r["concurrency"], first, r["date"]), {})[r["ui"]] = r
    groups: dict[tuple, list[tuple[float, float]]] = {}
    for (art, conc, first, _), p in sorted(pairs.items()):
        if True in p and False in p:
            groups.setdefault((art, conc, first), []).append(
                (p[True]["throughput_per_s"] / p[False]["throughput_per_s"], p[True]["p50_ms"] / p[False]["p50_ms"]))
    out = ["| artifact | concurrency | order | runs | throughput, page on / off, per run | median | p50, on / off, "
           "median |", "|---|---|---|---|---|---|---|"]
    for (art, conc, first), rs in sorted(groups.items()):
        out.append(f"| {Path(art).name} | {conc} | {first} | {len(rs)} | {', '.join(f'{t:.3f}' for t, _ in rs)} | "
                   f"{statistics.median(t for t, _ in rs):.3f} | {statistics.median(q for _, q in rs):.3f} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("artifacts", nargs="*", help="export directories (from `cascadeprune export`)")
    ap.add_argument("--table", action="store_true", help="print the Markdown table of --out and stop")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--requests", type=int, default=2000, help="per (artifact, transport, concurrency)")
    ap.add_argument("--max-seconds", type=float, default=20.0, help="per (artifact, transport, concurrency)")
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1, help="the service's --threads")
    ap.add_argument("--max-batch", type=int, default=16, help="the service's --max-batch")
    ap.add_argument("--no-mqtt", action="store_true", help="HTTP only (no broker needed)")
    ap.add_argument("--broker", choices=sorted(BROKERS), default="no-loss",
                    help="Mosquitto settings: no-loss (persistence saved on every change; default) or "
                         "no-persistence (what the no-loss settings cost)")
    ap.add_argument("--ui-compare", action="store_true",
                    help="HTTP rows also for a second service per artifact started with --no-ui (the page's cost)")
    ap.add_argument("--noui-first", action="store_true",
                    help="with --ui-compare: measure the --no-ui service first in each cell (order effects)")
    ap.add_argument("--ui-table", action="store_true", help="print the operator page's cost table and stop")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    args.argv = sys.argv[1:]
    if args.ui_table:
        print(ui_table(Path(args.out)))
        return
    if args.table:
        print(table(Path(args.out)))
        return
    if not args.artifacts:
        ap.error("give at least one export directory")
    infos = [json.loads((Path(a) / "deploy.json").read_text()) for a in args.artifacts]
    tmp = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    broker, broker_port = (None, None) if args.no_mqtt else start_broker(tmp, args.broker)
    uis = ((False, True) if args.noui_first else (True, False)) if args.ui_compare else (True,)
    servers = [Server(a, broker_port, args.threads, args.max_batch, f"serve{k}" + ("" if ui else "-noui"), ui=ui)
               for k, a in enumerate(args.artifacts) for ui in uis]
    prov = provenance("serve", args.argv)
    try:
        for transport in ["http"] + ([] if args.no_mqtt else ["mqtt"]):
            for conc in args.concurrency:
                for srv in servers:
                    a = srv.artifact
                    info = infos[args.artifacts.index(a)]
                    if transport == "mqtt" and not srv.ui:
                        continue  # the comparison is of HTTP rows; MQTT runs on the service as deployed
                    rng = np.random.default_rng(args.artifacts.index(a))  # the same windows with and without UI
                    sigs = [rng.standard_normal(info["window"]).astype(np.float32).tolist() for _ in range(32)]
                    if transport == "http":
                        # with --ui-compare each request names a device, so the page's board records it
                        extra = {"device": f"bench-c{conc}"} if args.ui_compare else {}
                        bodies = [json.dumps({"signal": s, **extra}).encode() for s in sigs]
                        if args.ui_compare and srv.ui:
                            with PagePoller(srv.port):
                                res = bench_http(srv.port, bodies, conc, args.requests, args.max_seconds, args.warmup)
                        else:
                            res = bench_http(srv.port, bodies, conc, args.requests, args.max_seconds, args.warmup)
                    else:
                        res = bench_mqtt(broker_port, srv.prefix, sigs, conc, args.requests, args.max_seconds,
                                         args.warmup)
                    rec = {"bench": "serve", "artifact": a, "model_id": info["model_id"],
                           "block_compression_ratio": info.get("block_compression_ratio"),
                           "int8": info.get("int8"), "window": info["window"], "transport": transport,
                           "payload": "json", "concurrency": conc, "service_threads": args.threads,
                           "max_batch": args.max_batch, "broker": None if transport == "http" else
                           f"mosquitto {args.broker}", "ui": srv.ui,
                           "page_polled": bool(args.ui_compare and srv.ui and transport == "http"), **res} | prov
                    ui_tag = "" if not args.ui_compare else (" ui " if srv.ui else " noui")
                    print(f"{transport:<4}{ui_tag} c={conc:<2} {info['model_id']:<32} {res['throughput_per_s']:>8} /s  "
                          f"p50 {res['p50_ms']:.2f} ms  p99 {res['p99_ms']:.2f} ms  ({res['requests']} ok, "
                          f"{res['errors']} errors)", flush=True)
                    append_records(Path(args.out), [rec])
    finally:
        codes = [s.stop() for s in servers]
        if broker:
            broker.terminate()
            broker.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    if any(codes):
        raise SystemExit(f"a service exited with {codes}")


if __name__ == "__main__":
    main()
