"""The operator page's server side: the device board, the JSON endpoints, the shipped assets, --no-ui.

A real uvicorn service in this process (no mocks); the page itself in a real browser is in
test_serve_browser.py.
"""

from __future__ import annotations

import json
import re
import time
from importlib import resources

import httpx
import numpy as np
import pytest

from cascadeprune.cli import build_parser
from cascadeprune.serve.devices import DeviceBoard, check_device
from cascadeprune.serve.ports import free_port
from cascadeprune.serve.service import Service
from serve_support import WINDOW, synthetic_dataset, tiny_export

CLASSES = ("normal", "inner", "outer", "ball")


def ans(k: int, p: float = 0.9) -> list[dict]:
    """One answer as the service sends it: the label and every class's probability."""
    probs = {c: (p if i == k else (1 - p) / (len(CLASSES) - 1)) for i, c in enumerate(CLASSES)}
    return [{"label": CLASSES[k], "probabilities": probs}]


def test_board_counts_history_and_flags():
    t = [1000.0]
    b = DeviceBoard(CLASSES, history=5, min_confidence=0.6, change_hold=2, clock=lambda: t[0])
    b.answers("pump-1", "mqtt", ans(0) * 3)
    row = b.snapshot()["devices"][0]
    assert (row["label"], row["counts"]["normal"], row["changed"], row["alert"]) == ("normal", 3, False, False)
    b.answers("pump-1", "mqtt", ans(1))  # a change: flagged for change_hold results
    row = b.snapshot()["devices"][0]
    assert (row["label"], row["changed"], row["previous"], row["alert"]) == ("inner", True, "normal", True)
    b.answers("pump-1", "mqtt", ans(1))
    assert b.snapshot()["devices"][0]["changed"]
    b.answers("pump-1", "mqtt", ans(1))
    row = b.snapshot()["devices"][0]
    assert not row["changed"] and not row["alert"]
    # history keeps the last 5: normal x2, inner x3
    assert row["counts"] == {"normal": 2, "inner": 3, "outer": 0, "ball": 0} and len(row["strip"]) == 5
    assert row["windows"] == 6
    b.answers("pump-1", "mqtt", ans(1, p=0.5))  # unsure: flagged though unchanged
    row = b.snapshot()["devices"][0]
    assert row["low_confidence"] and row["alert"] and row["probability"] == 0.5
    t[0] = 1010.0
    b.rejected("pump-1", "mqtt", "not_finite", "signal has 1 NaN")
    row = b.snapshot()["devices"][0]
    assert row["errors"] == 1 and row["last_error"].startswith("not_finite") and row["strip"][-1]["kind"] == "not_finite"
    assert row["last_seen"] == 1010.0 and row["label"] == "inner"  # a rejection is no diagnosis
    # a sensor fault (flat, clipped or stuck window): no diagnosis, the label stays, the row is flagged
    b.answers("pump-1", "mqtt", ans(1) + [{"label": None, "sensor_fault": {"kind": "flat", "message": "flat"}}])
    row = b.snapshot()["devices"][0]
    assert row["sensor_fault"] and row["alert"] and row["faults"] == 1 and row["label"] == "inner"
    assert row["strip"][-1]["kind"] == "sensor_fault" and sum(row["counts"].values()) == 3
    b.answers("pump-1", "mqtt", ans(1))
    assert not b.snapshot()["devices"][0]["sensor_fault"]


def test_board_is_bounded_and_most_recent_first():
    b = DeviceBoard(CLASSES, max_devices=3)
    for i in range(5):
        b.answers(f"d{i}", "http", ans(i % 4))
    b.answers("d2", "http", ans(0))
    snap = b.snapshot()
    assert [d["device"] for d in snap["devices"]] == ["d2", "d4", "d3"] and snap["evicted"] == 2


@pytest.mark.parametrize("bad", ["", "a/b", "x+", "#", "tab\there", "x" * 129, 7, None])
def test_device_names_checked(bad):
    assert check_device(bad) is not None
    assert check_device("pump-7 (line 3)") is None


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    return tiny_export(tmp_path_factory.getbasetemp() / "serve-artifact")


def start(artifact, **kw) -> tuple[Service, httpx.Client]:
    svc = Service(str(artifact[1]), http=f"127.0.0.1:{free_port()}", **kw)
    svc.start()
    return svc, httpx.Client(base_url=f"http://127.0.0.1:{svc.http_addr[1]}", timeout=10)


@pytest.fixture(scope="module")
def served(artifact):
    svc, client = start(artifact)
    yield svc, client
    client.close()
    svc.stop()


def metric(text: str, name: str, **labels) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    m = re.search(rf"^{name}{re.escape('{' + want + '}') if want else ''} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def test_page_and_assets_ship_in_the_package(served):
    _, c = served
    r = c.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    refs = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assets = [u for u in refs if u.startswith("/static/")]
    assert sorted(assets) == ["/static/app.css", "/static/app.js"]
    for u, ctype in (("/static/app.js", "text/javascript"), ("/static/app.css", "text/css")):
        a = c.get(u)
        assert a.status_code == 200 and a.headers["content-type"].startswith(ctype) and len(a.content) > 500
    # nothing from outside: every file of the page is local (the plant has no internet)
    static = resources.files("cascadeprune.serve") / "static"
    for f in static.iterdir():
        text = f.read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), f"{f.name} refers outside"
        assert "@import" not in text and "@font-face" not in text
    # every link of the page points at a route that answers
    for u in refs:
        if u.startswith("/"):
            assert c.get(u).status_code == 200, u


def test_devices_from_http_requests(served, artifact):
    svc, c = served
    x = synthetic_dataset().x["test"]
    probs = svc.predictor.probabilities(x[:3])
    r = c.post("/v1/predict", json={"signals": x[:2].tolist(), "device": "press-3"})
    assert r.status_code == 200, r.text
    r = c.post("/v1/predict?device=press-4", content=np.ascontiguousarray(x[2], "<f4").tobytes(),
               headers={"content-type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    assert c.post("/v1/predict", json={"signal": x[0].tolist()}).status_code == 200  # no device: no row
    rows = {d["device"]: d for d in c.get("/v1/devices").json()["devices"]}
    assert set(rows) >= {"press-3", "press-4"} and len(rows) == 2
    assert rows["press-3"]["windows"] == 2 and rows["press-3"]["label"] == CLASSES[int(probs[1].argmax())]
    assert abs(rows["press-3"]["probability"] - probs[1].max()) < 1e-4
    assert rows["press-4"]["label"] == CLASSES[int(probs[2].argmax())] and rows["press-4"]["source"] == "http"
    assert sum(rows["press-3"]["counts"].values()) == 2


def test_bad_device_and_bad_input_are_4xx_and_counted(served):
    _, c = served
    before = c.get("/metrics").text
    r = c.post("/v1/predict", json={"signal": [0.0] * WINDOW, "device": "a/b"})
    assert r.status_code == 422 and "device" in r.json()["error"]
    r = c.post("/v1/predict", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]
    status = c.get("/v1/status").json()
    after = c.get("/metrics").text
    for kind in ("bad_device", "malformed_json"):
        assert metric(after, "cascadeprune_errors_total", kind=kind) == metric(before, "cascadeprune_errors_total",
                                                                                kind=kind) + 1
        assert status["health"]["errors"][kind] == metric(after, "cascadeprune_errors_total", kind=kind)
    assert "a/b" not in {d["device"] for d in c.get("/v1/devices").json()["devices"]}


def test_status_reports_model_latency_and_rate(served, artifact):
    svc, c = served
    deploy = json.loads((artifact[1] / "deploy.json").read_text())
    x = synthetic_dataset().x["test"][:16]
    for _ in range(3):
        assert c.post("/v1/predict", json={"signals": x.tolist()}).status_code == 200
    s = c.get("/v1/status").json()
    m = s["model"]
    assert m["classes"] == deploy["classes"] and m["window"] == deploy["window"]
    assert m["sample_rate"] == deploy["sample_rate"] and m["int8"] == deploy["int8"]
    assert m["block_compression_ratio"] == deploy["block_compression_ratio"]
    assert m["parity"] == deploy["parity"] and m["source_sha256"] == deploy["source"]["sha256"]
    lat = s["latency"]["http"]
    assert lat["n"] >= 3 and 0 < lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"]
    h = s["health"]
    assert h["windows"] >= 48 and h["windows_per_s"] > 0 and h["queue_depth"] == 0
    assert h["broker"] == {"enabled": False}
    assert h["http_requests"]["/v1/predict 200"] >= 3
    text = c.get("/metrics").text
    assert h["windows"] == metric(text, "cascadeprune_batch_windows_sum")  # the same counter as /metrics


def test_absent_broker_does_not_block_the_page(artifact):
    """A broker that is not there: the page and its JSON answer at once and say so."""
    dead = free_port()  # nothing listens here
    svc, c = start(artifact, mqtt=f"mqtt://127.0.0.1:{dead}", client_id="ui-absent")
    try:
        t0 = time.perf_counter()
        assert c.get("/").status_code == 200
        s = c.get("/v1/status").json()
        assert time.perf_counter() - t0 < 2.0
        b = s["health"]["broker"]
        assert b["enabled"] and not b["connected"] and not b["subscribed"] and b["address"] == f"127.0.0.1:{dead}"
    finally:
        c.close()
        svc.stop()


def test_no_ui_serves_no_page(artifact):
    assert build_parser().parse_args(["serve", "x", "--no-ui"]).ui is False
    assert build_parser().parse_args(["serve", "x"]).ui is True
    svc, c = start(artifact, ui=False)
    try:
        for path in ("/", "/v1/devices", "/v1/status", "/static/app.js"):
            r = c.get(path)
            assert r.status_code == 404 and "routes are" in r.json()["error"], path
        x = synthetic_dataset().x["test"][0]
        assert c.post("/v1/predict", json={"signal": x.tolist(), "device": "pump-1"}).status_code == 200
        assert svc.ui is None
    finally:
        c.close()
        svc.stop()
