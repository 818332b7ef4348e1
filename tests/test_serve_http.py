"""`cascadeprune serve --http`: a real uvicorn server in a subprocess, a real httpx client, no mocks."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest
import torch

from cascadeprune.cli import main
from cascadeprune.storage import load_model
from cascadeprune.tasks.bearing.train import predict
from serve_support import WINDOW, free_port, synthetic_dataset, tiny_export, wait_port

LIMIT = 64 * 1024  # --max-body-bytes of the test server: 16 raw windows of 256 float32


class ServeProcess:
    """`python -m cascadeprune serve ...` with its stderr (JSON lines) collected as it comes."""

    def __init__(self, *args: str, port: int | None = None):
        self.port = port or free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "cascadeprune", "serve", *args, "--http",
                                      f"127.0.0.1:{self.port}"], stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(iter(self.proc.stderr.readline, "")),
                                        daemon=True)
        self._reader.start()
        wait_port(self.port, timeout=60)
        self.url = f"http://127.0.0.1:{self.port}"

    def events(self) -> list[dict]:
        return [json.loads(x) for x in self.lines if x.startswith("{")]

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(30)
        self._reader.join(5)
        return rc


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    return tiny_export(tmp_path_factory.getbasetemp() / "serve-artifact")


@pytest.fixture(scope="module")
def server(artifact):
    srv = ServeProcess(str(artifact[1]), "--max-body-bytes", str(LIMIT), "--max-batch", "16")
    yield srv
    if srv.proc.poll() is None:
        assert srv.terminate() == 0, srv.lines[-5:]


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def raw(x: np.ndarray) -> bytes:
    return np.ascontiguousarray(x, dtype="<f4").tobytes()


def post_raw(client, x: np.ndarray) -> httpx.Response:
    return client.post("/v1/predict", content=raw(x), headers={"content-type": "application/octet-stream"})


def test_health_names_the_model(client, artifact):
    deploy = json.loads((artifact[1] / "deploy.json").read_text())
    h = client.get("/health").json()
    check = h.pop("signal_check")
    assert h == {"status": "ok", "model": deploy["model_id"], "window": WINDOW, "sample_rate": 12000.0,
                 "classes": deploy["classes"], "runtime": "onnx"}
    assert check == {"thresholds": deploy["signal_quality"]["thresholds"], "source": "deploy.json"}


def test_predictions_equal_the_classifiers_own(client, artifact, capsys):
    """Every test window of the synthetic protocol: labels as `cascadeprune eval` computes them."""
    ds = synthetic_dataset()
    x, classes = ds.x["test"], list(ds.classes)
    clf = load_model(artifact[0])
    want = predict(clf, x)
    assert len(set(want.tolist())) >= 2, "the tiny model must not predict one label for all (weak test)"
    labels, probs = [], []
    for i in range(0, len(x), 16):  # 16 windows per octet-stream request (the body limit)
        r = post_raw(client, x[i:i + 16])
        assert r.status_code == 200, r.text
        labels += [p["label"] for p in r.json()["predictions"]]
        probs += [[p["probabilities"][c] for c in classes] for p in r.json()["predictions"]]
    got = np.array([classes.index(lab) for lab in labels])
    assert np.array_equal(got, want)
    with torch.no_grad():
        ref = torch.softmax(clf(torch.from_numpy(x)), -1).numpy()
    np.testing.assert_allclose(np.array(probs), ref, atol=1e-4)
    # JSON, one window and several, give the same answers as the raw form
    r = client.post("/v1/predict", json={"signal": x[0].tolist()})
    assert r.status_code == 200 and r.json()["predictions"][0]["label"] == classes[want[0]]
    r = client.post("/v1/predict", json={"signals": x[:5].tolist(), "sample_rate": 12000})
    assert [p["label"] for p in r.json()["predictions"]] == [classes[k] for k in want[:5]]
    # and the same confusion matrix as the eval command itself prints
    assert main(["eval", str(artifact[0]), "--task", "synthetic", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["n"] == len(x)
    cm = np.zeros((len(classes), len(classes)), dtype=int)
    np.add.at(cm, (ds.y["test"], got), 1)
    assert cm.tolist() == m["confusion"]


def _nan_raw() -> bytes:
    x = np.zeros(WINDOW, "<f4")
    x[7] = np.nan
    return x.tobytes()


def _chunks(n: int):
    for _ in range(n):
        yield b"\0" * 4096


J, OCT = "application/json", "application/octet-stream"
GOOD = [0.0] * WINDOW  # right length (a flat line: answered sensor_fault, but never refused)
REAL = synthetic_dataset().x["test"][0]
BAD_INPUTS = {
    # name: (content type, body, expected status, words the error must contain)
    "short_json": (J, json.dumps({"signal": [0.0] * 100}), 422, "expected 256"),
    "long_json": (J, json.dumps({"signal": [0.0] * (WINDOW + 1)}), 422, "257 samples"),
    "ragged_signals": (J, json.dumps({"signals": [GOOD, [0.0] * 3]}), 422, "signals[1]"),
    "raw_not_whole_windows": (OCT, b"\0" * (4 * WINDOW + 4), 422, "whole number of windows"),
    "raw_odd_bytes": (OCT, b"\0" * 1001, 422, "1001 bytes"),
    "nan_json": (J, '{"signal": [NaN' + ", 0.0" * (WINDOW - 1) + "]}", 422, "NaN/Inf"),
    "inf_json": (J, '{"signal": [0.0, -Infinity' + ", 0.0" * (WINDOW - 2) + "]}", 422, "NaN/Inf"),
    "overflow_json": (J, json.dumps({"signal": [1e39] + GOOD[1:]}), 422, "beyond-float32"),
    "nan_raw": (OCT, _nan_raw(), 422, "sample 7"),
    "string_value": (J, json.dumps({"signal": ["1.0"] + GOOD[1:]}), 422, "signal[0]"),
    "bool_value": (J, json.dumps({"signal": GOOD[1:] + [True]}), 422, "expected a number"),
    "null_value": (J, json.dumps({"signal": [None] + GOOD[1:]}), 422, "expected a number"),
    "signal_not_list": (J, json.dumps({"signal": "0,0,0"}), 422, "must be a list"),
    "empty_json": (J, b"", 400, "empty body"),
    "empty_raw": (OCT, b"", 400, "empty body"),
    "malformed_json": (J, b'{"signal": [0.0, 1.0', 400, "malformed JSON"),
    "json_array": (J, json.dumps(GOOD), 400, "expected an object"),
    "no_signal_key": (J, json.dumps({"samples": GOOD}), 400, "\"signal\""),
    "both_keys": (J, json.dumps({"signal": GOOD, "signals": [GOOD]}), 422, "both"),
    "wrong_sample_rate": (J, json.dumps({"signal": GOOD, "sample_rate": 48000}), 422, "48000 Hz"),
    "text_plain": ("text/plain", b"0.0 0.0", 415, "text/plain"),
    "no_content_type": (None, b"\0" * 4 * WINDOW, 415, "(none)"),
    "too_large_declared": (OCT, b"\0" * (LIMIT + 4 * WINDOW), 413, "over the limit"),
    "too_large_chunked": (OCT, _chunks(LIMIT // 4096 + 2), 413, "over the limit"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_gets_4xx_and_the_service_goes_on(client, name):
    ctype, body, status, words = BAD_INPUTS[name]
    headers = {"content-type": ctype} if ctype else {}
    if name == "no_content_type":  # httpx adds none for raw content; make sure
        assert "content-type" not in client.build_request("POST", "/v1/predict", content=body).headers
    # a fresh connection: a refused body may be left unread, and the server then closes the connection
    with httpx.Client(base_url=client.base_url, timeout=30) as c:
        r = c.post("/v1/predict", content=body, headers=headers)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    err = r.json()["error"]
    assert words in err and "\n" not in err, err
    ok = client.post("/v1/predict", json={"signal": REAL.tolist()})
    assert ok.status_code == 200 and ok.json()["predictions"][0]["label"]


def test_unknown_routes_answer_json(client):
    r = client.get("/v2/predict")
    assert r.status_code == 404 and "routes are" in r.json()["error"]
    r = client.get("/v1/predict")
    assert r.status_code == 405 and "GET /v1/predict" in r.json()["error"]


def test_loopback_load_has_no_errors(server, client, capsys):
    """2,000 requests at concurrency 8 over keep-alive connections: every one 200; p99 recorded."""
    x = synthetic_dataset().x["test"][:64]
    bodies = [raw(w[None]) for w in x]
    before = _metric(client, 'cascadeprune_http_requests_total{path="/v1/predict",status="200"}')
    n, conc = 2000, 8
    lat: list[float] = []
    statuses: list[int] = []

    async def run():
        limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
        async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as ac:
            async def worker(k):
                for i in range(k, n, conc):
                    t0 = time.perf_counter()
                    r = await ac.post("/v1/predict", content=bodies[i % len(bodies)],
                                      headers={"content-type": OCT})
                    lat.append(time.perf_counter() - t0)
                    statuses.append(r.status_code)

            await asyncio.gather(*(worker(k) for k in range(conc)))

    t0 = time.perf_counter()
    asyncio.run(run())
    wall = time.perf_counter() - t0
    assert len(statuses) == n and set(statuses) == {200}
    p50, p99 = np.percentile(np.array(lat) * 1e3, [50, 99])
    with capsys.disabled():
        print(f"\nHTTP loopback load: {n} requests, concurrency {conc}: {n / wall:.0f} req/s, "
              f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, 0 errors")
    assert p99 < 2000  # generous: a shared 2-core machine; the point is that nothing stalls
    after = _metric(client, 'cascadeprune_http_requests_total{path="/v1/predict",status="200"}')
    assert after - before == n
    assert _metric(client, "cascadeprune_batch_windows_count") > 0


def _metric(client, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def test_metrics_count_statuses_and_errors(client):
    client.post("/v1/predict", json={"signal": [0.0] * 3})
    text = client.get("/metrics").text
    assert 'cascadeprune_errors_total{kind="wrong_length"}' in text
    assert 'cascadeprune_http_requests_total{path="/v1/predict",status="422"}' in text
    assert "cascadeprune_http_request_duration_seconds_bucket" in text


def test_sigterm_drains_open_requests_and_exits_0(artifact):
    srv = ServeProcess(str(artifact[1]), "--threads", "1")
    body = raw(np.zeros((1, WINDOW), np.float32))
    results: list[int] = []

    def hammer():
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            for _ in range(10_000):
                try:
                    results.append(c.post("/v1/predict", content=body, headers={"content-type": OCT}).status_code)
                except httpx.TransportError:
                    return  # the server closed: stop (requests after that are refused, not dropped)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    assert srv.terminate() == 0
    for t in threads:
        t.join(30)
    assert results and set(results) == {200}, set(results)  # every accepted request was answered
    events = srv.events()
    assert [e["event"] for e in events if e["event"] in ("start", "stop")] == ["start", "stop"]
    assert events[0]["runtime"] == "onnx" and events[0]["http"] == f"127.0.0.1:{srv.port}"


def test_bad_arguments_are_one_line_errors(artifact, tmp_path, capsys):
    for argv, words in [
        ([str(artifact[1])], "nothing to serve"),
        ([str(artifact[1]), "--http", "localhost"], "is not HOST:PORT"),
        ([str(artifact[1]), "--mqtt", "mqtts://h:1"], "is not mqtt://"),
        ([str(artifact[1]), "--http", "127.0.0.1:0", "--max-batch", "0"], "--max-batch: must be >= 1"),
        ([str(tmp_path / "nothing"), "--http", "127.0.0.1:0"], "does not exist"),
    ]:
        assert main(["serve", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("cascadeprune: error:") and words in err and "\n" not in err, err


def test_classifier_directory_is_served_through_pytorch(artifact, client):
    """The fallback: a classifier directory, no export; same answers as the ONNX service."""
    from cascadeprune.serve.service import Service

    port = free_port()
    svc = Service(str(artifact[0]), http=f"127.0.0.1:{port}")
    svc.start()
    try:
        x = synthetic_dataset().x["test"][::400][:5]  # 5 windows: under the test server's body limit
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            assert c.get("/health").json()["runtime"] == "torch"
            torch_answer = c.post("/v1/predict", json={"signals": x.tolist()}).json()["predictions"]
        onnx_answer = client.post("/v1/predict", json={"signals": x.tolist()}).json()["predictions"]
        assert [p["label"] for p in torch_answer] == [p["label"] for p in onnx_answer]
        for a, b in zip(torch_answer, onnx_answer):
            assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-4)
    finally:
        svc.stop()


def fault_windows() -> dict[str, np.ndarray]:
    """Flat, clipped and stuck windows made from a real test window of the model's protocol."""
    x = synthetic_dataset().x["test"][3]
    rail = float(np.percentile(np.abs(x), 90))
    stuck = x.copy()
    stuck[60:120] = np.sort(x)[WINDOW // 2]
    return {"flat": np.zeros(WINDOW, np.float32), "clipped": np.clip(x, -rail, rail), "stuck": stuck}


def test_sensor_faults_answered_instead_of_a_bearing_class(client, artifact):
    """One request with good and faulty windows: each faulty one gets sensor_fault (kind, statistic,
    threshold), the good ones their label, in order; counted by kind in /metrics."""
    thresholds = json.loads((artifact[1] / "deploy.json").read_text())["signal_quality"]["thresholds"]
    faults = fault_windows()
    good = synthetic_dataset().x["test"][:2]
    before = {k: _metric(client, f'cascadeprune_sensor_faults_total{{kind="{k}"}}') for k in faults}
    r = client.post("/v1/predict", json={"signals": [good[0].tolist(), *(w.tolist() for w in faults.values()),
                                                     good[1].tolist()]})
    assert r.status_code == 200, r.text
    p = r.json()["predictions"]
    assert len(p) == 5 and p[0]["label"] and p[4]["label"] and "sensor_fault" not in p[0]
    for answer, (kind, w) in zip(p[1:4], faults.items()):
        f = answer["sensor_fault"]
        assert answer["label"] is None and "probabilities" not in answer and f["kind"] == kind, answer
        stat = {"flat": "std", "clipped": "rail_fraction", "stuck": "repeat_fraction"}[kind]
        assert f["statistic"] == stat and f["threshold"] == thresholds[{"std": "min_std", "rail_fraction":
                                                                        "max_rail_fraction", "repeat_fraction":
                                                                        "max_repeat_fraction"}[stat]]
        assert (f["value"] < f["threshold"]) if kind == "flat" else (f["value"] > f["threshold"])
    r = post_raw(client, np.stack(list(faults.values())))  # the raw form too
    assert [a["sensor_fault"]["kind"] for a in r.json()["predictions"]] == list(faults)
    for k in faults:
        assert _metric(client, f'cascadeprune_sensor_faults_total{{kind="{k}"}}') - before[k] == 2
    # every test window of the protocol passes the check: none answered sensor_fault
    x = synthetic_dataset().x["test"]
    for i in range(0, len(x), 16):
        assert all(a["label"] for a in post_raw(client, x[i:i + 16]).json()["predictions"])


def test_signal_threshold_flags(artifact, capsys):
    """Overrides come from flags; a bad value is a one-line error naming the flag; --no-signal-check
    answers a flat window with a class."""
    for argv, words in [(["--max-rail-fraction", "2"], "--max-rail-fraction: must be <= 1"),
                        (["--min-std", "nan"], "--min-std: must be a finite number"),
                        (["--no-signal-check", "--min-std", "1"], "--no-signal-check")]:
        assert main(["serve", str(artifact[1]), "--http", "127.0.0.1:0", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("cascadeprune: error:") and words in err and "\n" not in err, err
    for flags, flat_label in [(["--no-signal-check"], True), (["--min-std", "1e9"], False)]:
        srv = ServeProcess(str(artifact[1]), *flags)
        try:
            with httpx.Client(base_url=srv.url, timeout=30) as c:
                check = c.get("/health").json()["signal_check"]
                assert check is None if flat_label else check["thresholds"]["min_std"] == 1e9
                real = synthetic_dataset().x["test"][0]
                a = c.post("/v1/predict", json={"signals": [[0.0] * WINDOW, real.tolist()]}).json()["predictions"]
            assert bool(a[0]["label"]) is flat_label
            # --min-std 1e9: every window is "flat" now, the real one too
            assert bool(a[1]["label"]) is flat_label
        finally:
            assert srv.terminate() == 0


def test_data_window_files_are_what_the_service_takes(client, artifact, tmp_path, capsys):
    """The walkthrough: `data window --model EXPORT` cuts window.json / window.f32 from a recording;
    the service answers them exactly as it answers the window itself."""
    x = synthetic_dataset().x["test"][:2].reshape(-1)  # a recording of 2 windows' samples
    rec = tmp_path / "rec.csv"
    rec.write_text("".join(f"{v!r}\n" for v in x.tolist()))
    for fmt in ("json", "f32"):
        argv = ["data", "window", str(rec), "--model", str(artifact[1]), "--fs", "12000", "--offset", str(WINDOW // 2),
                "--format", fmt, "--id", "w1", "--out", str(tmp_path / f"window.{fmt}")]
        assert main(argv) == 0, capsys.readouterr().err
    want = post_raw(client, x[WINDOW // 2: WINDOW // 2 + WINDOW][None]).json()["predictions"]
    body = (tmp_path / "window.json").read_bytes()
    assert json.loads(body)["id"] == "w1"
    got_json = client.post("/v1/predict", content=body, headers={"content-type": J}).json()["predictions"]
    got_raw = client.post("/v1/predict", content=(tmp_path / "window.f32").read_bytes(),
                          headers={"content-type": OCT}).json()["predictions"]
    assert got_json == want == got_raw and want[0]["label"]
