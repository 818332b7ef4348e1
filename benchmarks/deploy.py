"""Deployed latency and memory: dense vs cascade-compressed classifiers, PyTorch vs ONNX Runtime
(fp32 and dynamic int8), batch 1 and 8, 1 and 2 threads, all in one run.

Sources (made here first when missing, by the same drivers as the other benchmarks; their
records go to results/deploy_sources.jsonl):

- ``gpt2-deep`` (12 layers, raw patches): dense, cascade 8.7x and 13.8x (benchmarks/cascade.py);
- ``all-minilm-l6-v2`` (pretrained MiniLM, spectral front end): dense and cascade 8.7x;
- ``smollm2-135m`` (pretrained SmolLM2-135M, spectral front end): made with the CLI itself, sized
  for 2 shared cores: ``cascadeprune train --lora --max-steps 40`` (dense.py's recipe is 200
  steps, about 15 minutes alone on this machine) and ``cascadeprune compress --recipe
  recipes/cpu-fast.yaml --recovery-steps 20`` (20 LoRA steps per stage instead of 60/60/180). Its
  accuracy is that of a short run; its latency and memory are those of the real 135M architecture.

Every classifier is exported with ``cascadeprune.deploy.export`` (the code behind
``cascadeprune export``; parity checked on the protocol's test windows), fp32 and int8, into
benchmarks/exports/ (not committed). Then, for each (batch, threads), every artifact is measured
by ``cascadeprune.deploy.bench`` in a fresh process, dense and compressed one after the other.
One record per (model, ratio, runtime, int8, batch, threads) goes to results/deploy.jsonl; all
records of one invocation share a ``run_id``, and the tables use one run only.

    python -m benchmarks.deploy                       # everything (about an hour on 2 cores)
    python -m benchmarks.deploy --models gpt2-deep --batches 1 --threads 1
    python -m benchmarks.deploy --table               # Markdown tables of the latest run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from benchmarks._common import (CHECKPOINTS, DATA, HERE, RESULTS_DIR, ROOT, append_records, checkpoint_name,
                                child_command, load_records, provenance)
from benchmarks.cascade import run_dir

RESULTS = RESULTS_DIR / "deploy.jsonl"
SOURCES_RESULTS = RESULTS_DIR / "deploy_sources.jsonl"
EXPORTS = HERE / "exports"
PROTOCOL = "cwru-4class-crossload"
SEED = 42
# model -> how cascade.py makes it: front end, speed jitter, ratios, recovery scale
MODELS = {
    "gpt2-deep": dict(front_end="raw", speed_jitter=0.03, ratios=(8.7, 13.8), recovery_scale=1.0),
    "all-minilm-l6-v2": dict(front_end="spectrum", speed_jitter=0.0, ratios=(8.7,), recovery_scale=1.0),
    "smollm2-135m": dict(cli=True, ratios=(8.7,), train_steps=40, recovery_steps=20),
}


def cli_sources(model: str) -> dict[float, Path]:
    """Dense and compressed classifiers made by `cascadeprune train` and `compress` (short budgets)."""
    spec = MODELS[model]
    dense = CHECKPOINTS / f"{model}_{PROTOCOL}_seed{SEED}_deploy{spec['train_steps']}"
    cli = [sys.executable, "-m", "cascadeprune"]
    if not (dense / "classifier.json").is_file():
        subprocess.run(cli + ["train", "--task", PROTOCOL, "--backbone", model, "--lora", "--max-steps",
                              str(spec["train_steps"]), "--seed", str(SEED), "--out", str(dense), "--data-dir", DATA,
                              "--overwrite"], check=True)
    out = {1.0: dense}
    for r in spec["ratios"]:
        run = HERE / "runs" / f"{dense.name}_cascade_{r:g}x_rec{spec['recovery_steps']}"
        if not (run / "model" / "classifier.json").is_file():
            subprocess.run(cli + ["compress", str(dense), "--task", PROTOCOL, "--ratio", f"{r:g}", "--recipe",
                                  str(ROOT / "recipes" / "cpu-fast.yaml"), "--recovery-steps",
                                  str(spec["recovery_steps"]), "--seed", str(SEED), "--out", str(run), "--data-dir",
                                  DATA, "--overwrite"], check=True)
        out[r] = run / "model"
    return out


def sources(model: str) -> dict[float, Path]:
    """ratio -> classifier directory (1.0 is the dense checkpoint); made with cascade.py if missing."""
    spec = MODELS[model]
    if spec.get("cli"):
        return cli_sources(model)
    ckpt = CHECKPOINTS / checkpoint_name(model, PROTOCOL, SEED, spec["speed_jitter"], spec["front_end"])
    runs = {r: run_dir(ckpt.name, "cascade", r, spec["recovery_scale"]) for r in spec["ratios"]}
    missing = [r for r, d in runs.items() if final_stage(d) is None]
    if missing:
        cmd = child_command("cascade", "--model", model, "--protocol", PROTOCOL, "--front-end", spec["front_end"],
                            "--speed-jitter", str(spec["speed_jitter"]), "--recovery-scale", str(spec["recovery_scale"]),
                            "--variants", "cascade", "--seeds", str(SEED), "--ratios", *[f"{r:g}" for r in missing],
                            "--results", str(SOURCES_RESULTS))
        print("making sources:", " ".join(cmd[1:]), file=sys.stderr, flush=True)
        subprocess.run(cmd, check=True, cwd=ROOT)
    return {1.0: ckpt} | {r: final_stage(d) for r, d in runs.items()}


def final_stage(run: Path) -> Path | None:
    """The last completed stage's checkpoint of a cascade.py run (what its record measured)."""
    state = run / "checkpoints" / "state.json"
    if not state.is_file():
        return None
    st = json.loads(state.read_text())
    last = run / "checkpoints" / f"stage-{st['completed']:02d}"
    return last if st["completed"] == len(st["stages"]) - 1 == 2 and (last / "classifier.json").is_file() else None


def exports(model: str, ratio: float, src: Path, kinds=("fp32", "dynamic", "static")) -> dict[str, Path]:
    """{"fp32": dir, "dynamic": dir, "static": dir} (int8 methods): exported once, reused while the
    source's digest is unchanged."""
    from cascadeprune.deploy.export import export_classifier, source_digest

    out = {}
    digest = None
    for kind in kinds:
        d = EXPORTS / f"{model}_{ratio:g}x_{kind}"
        info_file = d / "deploy.json"
        if info_file.is_file():
            digest = digest or source_digest(src)
            if json.loads(info_file.read_text())["source"]["sha256"] == digest:
                out[kind] = d
                continue
        print(f"exporting {src} ({kind})", file=sys.stderr, flush=True)
        export_classifier(src, d, int8=None if kind == "fp32" else kind, overwrite=True, data_dir=DATA)
        out[kind] = d
    return out


def run(args) -> None:
    from cascadeprune.deploy.bench import bench_one

    base = provenance("deploy", args.argv) | {"benchmark": "deploy", "protocol": PROTOCOL, "seed": SEED,
                                        "run_id": uuid.uuid4().hex[:12]}
    artifacts = []  # (model, ratio, runtime, int8 method or None, path, export info)
    for model in args.models:
        for ratio, src in sources(model).items():
            methods = ("dynamic", "static") if model in args.static_for else ("dynamic",)
            ex = exports(model, ratio, src, ("fp32", *methods))
            info = {k: json.loads((p / "deploy.json").read_text()) for k, p in ex.items()}
            artifacts += [(model, ratio, "torch", None, src, info["fp32"]),
                          (model, ratio, "onnx", None, ex["fp32"], info["fp32"])]
            artifacts += [(model, ratio, "onnx", m, ex[m], info[m]) for m in methods]
    t0 = time.perf_counter()
    n = len(artifacts) * len(args.batches) * len(args.threads)
    i = 0
    for batch in args.batches:
        for threads in args.threads:
            for model, ratio, runtime, int8, path, info in artifacts:
                i += 1
                print(f"[{i}/{n}] {model} {ratio:g}x {runtime}{' int8 ' + int8 if int8 else ''} batch {batch} "
                      f"threads {threads} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
                breakdown = runtime == "onnx" and int8 != "static" and batch == 1 and threads == 1
                r = bench_one(path, runtime, batch, threads, args.runs, args.warmup, breakdown, args.max_seconds)
                acc, val = info["parity"]["accuracy"], info["parity"]["val_accuracy"]
                which = "onnx_int8" if int8 else ("onnx_fp32" if runtime == "onnx" else "torch")
                rec = base | {
                    "model": model, "ratio": ratio, "ratio_achieved": info["block_compression_ratio"],
                    "runtime": runtime, "int8": bool(int8), "int8_method": int8, "batch": batch, "threads": threads,
                    "accuracy": acc[which], "val_accuracy": val[which],
                    "test_windows": info["parity"]["test_windows"],
                    **{k: r[k] for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "throughput_per_s", "peak_rss_mb",
                                         "base_rss_mb", "model_mem_mb", "file_mb", "block_params", "flops_per_window",
                                         "block_flops_per_window", "runs", "warmup", "load_s")},
                    "breakdown": r.get("breakdown"), "artifact": str(Path(path).relative_to(ROOT)),
                    # other work on the machine inflates latency (2-thread rows most): say how busy it was
                    "load_avg_1m": round(os.getloadavg()[0], 2)}  # now, not when the run started (provenance's)
                append_records(args.results, [rec])


def latest(results: Path) -> list[dict]:
    rows = load_records(results)
    run_id = rows[-1]["run_id"]
    return [r for r in rows if r["run_id"] == run_id]


def _rt(r: dict) -> str:
    return f"ONNX int8 {r['int8_method']}" if r["int8"] else ("ONNX fp32" if r["runtime"] == "onnx" else "PyTorch")


def table(rows: list[dict]) -> str:
    """One table per model: every runtime and ratio at each (batch, threads), ratios vs dense."""
    loads = [r["load_avg_1m"] for r in rows if r.get("load_avg_1m") is not None]
    busy = f"; 1-minute load average {min(loads):.1f}-{max(loads):.1f} during the run" if loads else ""
    out = [f"Run {rows[0]['run_id']} ({rows[0]['date']}, {rows[0]['machine']}, commit {rows[0]['commit']}{busy}): "
           f"`{rows[0]['command']}`", ""]
    for model in dict.fromkeys(r["model"] for r in rows):
        out += [f"**{model}**", "",
                "| batch | threads | runtime | ratio | val acc. | test acc. | p50 ms | p90 ms | p99 ms | windows/s "
                "| peak RSS MB | model MB | file MB | p50 vs dense | model MB vs dense |", "|" + "---|" * 15]
        mine = [r for r in rows if r["model"] == model]
        for r in mine:
            dense = next(d for d in mine if d["ratio"] == 1.0 and d["runtime"] == r["runtime"] and
                         d["int8_method"] == r["int8_method"] and d["batch"] == r["batch"] and
                         d["threads"] == r["threads"])
            out.append(f"| {r['batch']} | {r['threads']} | {_rt(r)} | {r['ratio']:g}x | {100 * r['val_accuracy']:.2f} % | "
                       f"{100 * r['accuracy']:.2f} % | "
                       f"{r['p50_ms']:.3f} | {r['p90_ms']:.3f} | {r['p99_ms']:.3f} | {r['throughput_per_s']:.0f} | "
                       f"{r['peak_rss_mb']:.0f} | {r['model_mem_mb']:.1f} | {r['file_mb']:.2f} | "
                       f"{r['p50_ms'] / dense['p50_ms']:.3f} | {r['model_mem_mb'] / dense['model_mem_mb']:.3f} |")
        out.append("")
    return "\n".join(out)


def targets(rows: list[dict]) -> str:
    """The issue's targets at 13.8x on gpt2-deep, batch 1, 1 thread, from the same run."""
    def pick(ratio, runtime, int8):
        return next((r for r in rows if r["model"] == "gpt2-deep" and r["ratio"] == ratio and r["runtime"] == runtime
                     and r["int8_method"] == int8 and r["batch"] == 1 and r["threads"] == 1), None)

    lines = ["| comparison (gpt2-deep, batch 1, 1 thread) | dense | 13.8x | change | target | met |", "|---|---|---|---|---|---|"]
    for label, rt, q in (("PyTorch", "torch", None), ("ONNX fp32", "onnx", None), ("ONNX int8 dynamic", "onnx", "dynamic"),
                         ("ONNX int8 static", "onnx", "static")):
        d, c = pick(1.0, rt, q), pick(13.8, rt, q)
        if not (d and c):
            continue
        for key, name, goal in (("p50_ms", "p50 latency ms", -85), ("model_mem_mb", "model memory MB", -80)):
            ch = 100 * (c[key] / d[key] - 1)
            lines.append(f"| {label} {name} | {d[key]:.3f} | {c[key]:.3f} | {ch:+.1f} % | <= {goal} % | "
                         f"{'yes' if ch <= goal else 'no'} |")
    d, c = pick(1.0, "torch", None), pick(13.8, "onnx", "dynamic")
    if d and c:
        ch = 100 * (c["p50_ms"] / d["p50_ms"] - 1)
        lines.append(f"| deployed (ONNX int8 dynamic 13.8x) vs dense PyTorch, p50 ms | {d['p50_ms']:.3f} | {c['p50_ms']:.3f} "
                     f"| {ch:+.1f} % | <= -95 % | {'yes' if ch <= -95 else 'no'} |")
    d = pick(1.0, "onnx", None)
    c = pick(13.8, "onnx", None)
    if d and c:
        lines.append(f"| block FLOPs per window (the latency floor) | {d['block_flops_per_window']:,} | "
                     f"{c['block_flops_per_window']:,} | {100 * (c['block_flops_per_window'] / d['block_flops_per_window'] - 1):+.1f} % | | |")
    return "\n".join(lines)


def references(rows: list[dict], path: Path = HERE / "results" / "reference.jsonl") -> str:
    """The reference CNN's deployed artifacts (benchmarks/reference.py: same `cascadeprune export` and `bench`, batch 1,
    1 thread, a fresh process each) beside gpt2-deep's from this run. Two runs, so compare levels, not ratios."""
    recs = load_records(path)
    dep = [r for r in recs if r.get("benchmark") == "reference-deploy"]
    if not dep:
        return "(no reference-deploy record in results/reference.jsonl yet: run benchmarks/reference.py)"
    last = dep[-1]["date"]
    dep = [r for r in dep if r["date"] == last]
    accs = {}
    for r in recs:
        if r.get("benchmark") == "reference" and r["protocol"] == dep[0]["protocol"]:
            accs.setdefault(r["model"], []).append(r["accuracy"])
    params = next((r["params"] for r in recs if r.get("benchmark") == "reference" and r["model"] == "wdcnn"), None)
    lines = [f"The reference CNN (`wdcnn`, {params:,} parameters; test accuracy {100 * sum(accs['wdcnn']) / len(accs['wdcnn']):.2f} % "
             f"on {dep[0]['protocol']}, mean of {len(accs['wdcnn'])} seeds) from `benchmarks/reference.py` ({last}), "
             "beside gpt2-deep from the run above, batch 1, 1 thread:", "",
             "| model | ratio | runtime | p50 ms | model MB | file MB | FLOPs per window |", "|---|---|---|---|---|---|---|"]
    names = {"torch": "PyTorch", "onnx fp32": "ONNX fp32", "onnx int8 dynamic": "ONNX int8 dynamic"}
    for r in dep:
        lines.append(f"| wdcnn | – | {names[r['artifact']]} | {r['p50_ms']:.3f} | {r['model_mem_mb']:.1f} | "
                     f"{r['file_mb']:.2f} | {r['flops_per_window']:,} |")
    for r in rows:
        if r["model"] == "gpt2-deep" and r["batch"] == 1 and r["threads"] == 1 and r["int8_method"] in (None, "dynamic"):
            lines.append(f"| gpt2-deep | {r['ratio']:g}x | {_rt(r)} | {r['p50_ms']:.3f} | {r['model_mem_mb']:.1f} | "
                         f"{r['file_mb']:.2f} | {r.get('flops_per_window') or r.get('block_flops_per_window') or 0:,} |")
    return "\n".join(lines)


def breakdowns(rows: list[dict]) -> str:
    from cascadeprune.deploy.bench import breakdown_table

    return breakdown_table(rows, name=lambda r: f"{r['model']} | {r['ratio']:g}x | {_rt(r)}",
                           head="model | ratio | runtime")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--max-seconds", type=float, default=10.0, help="per artifact and setting (at least 20 calls)")
    ap.add_argument("--static-for", nargs="*", default=["gpt2-deep"],
                    help="models also exported with static int8 (each export pass over the protocol costs minutes "
                         "for SmolLM2 on 2 cores; the int8 method is chosen on gpt2-deep's validation split)")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--table", action="store_true", help="print the tables of the latest run and stop")
    args = ap.parse_args()
    args.argv = sys.argv[1:]
    if args.table:
        rows = latest(args.results)
        print(table(rows) + "\n\nTargets:\n\n" + targets(rows) + "\n\nWhere the time goes (ONNX Runtime kernel time, "
              "batch 1, 1 thread):\n\n" + breakdowns(rows) + "\n\n" + references(rows))
        return
    run(args)


if __name__ == "__main__":
    main()
