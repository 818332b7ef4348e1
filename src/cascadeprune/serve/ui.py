"""The operator's page and its JSON endpoints (on unless ``--no-ui``).

    GET /                 the page (static/index.html); its script and style under /static/
    GET /v1/devices       one row per device seen: last diagnosis, probability, counts, history strip
    GET /v1/status        service (start time, instance), model (deploy.json), health (windows/s, errors by
                          kind, broker state, queue depth) and latency percentiles

Everything the page loads ships inside the package (no CDN, no web font: the plant has no internet).
The page polls both JSON endpoints about once a second; both answer from memory (counters, the device
board, the broker client's own flags) and never wait on the broker or the model, so a slow or absent
broker cannot block the page. See docs/operator-page.md.

Example::

    ui = OperatorUI(predictor, engine, metrics, mqtt=None)
    routes = ui.routes()          # added to the Starlette app by serve.http.create_app
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from importlib import resources

from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cascadeprune.serve.devices import DeviceBoard, Recent

STATIC = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
          "app.css": "text/css; charset=utf-8"}
# the page's own origin only: no inline script, nothing from outside even if an asset were edited to ask
HEADERS = {"content-security-policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                                      "base-uri 'none'; form-action 'none'",
           "x-content-type-options": "nosniff", "cache-control": "no-cache"}
RATE_SPAN_S = 10.0  # windows/s over about this many seconds


def model_card(predictor) -> dict:
    """What deploy.json says, for the page (a classifier directory served through PyTorch has less)."""
    info = getattr(predictor, "info", None) or {}
    source = info.get("source") or {}
    return {"model_id": predictor.model_id, "runtime": predictor.runtime, "classes": list(predictor.classes),
            "window": predictor.window, "sample_rate": predictor.sample_rate,
            "block_compression_ratio": info.get("block_compression_ratio"),
            "block_params": info.get("block_params"), "dense_block_params": info.get("dense_block_params"),
            "int8": info.get("int8"), "quantization": info.get("quantization"), "parity": info.get("parity"),
            "source_sha256": source.get("sha256"), "protocol": source.get("protocol"),
            "file_mb": info.get("file_mb"), "opset": info.get("opset"), "created": info.get("created"),
            "versions": info.get("versions"), "deploy_json": bool(info)}


def _counter(metric) -> dict[str, float]:
    """label value(s) -> count of a labelled prometheus Counter, read through its public ``collect``."""
    out = {}
    for family in metric.collect():
        for s in family.samples:
            if s.name.endswith("_total"):
                out[" ".join(s.labels.values())] = s.value
    return out


class OperatorUI:
    def __init__(self, predictor, engine, metrics, mqtt=None, history: int = 60, min_confidence: float = 0.6,
                 signal_check: dict | None = None):
        self.predictor, self.engine, self.metrics, self.mqtt = predictor, engine, metrics, mqtt
        self.board = DeviceBoard(predictor.classes, history=history, min_confidence=min_confidence)
        self.latency = Recent()
        self.started, self.instance = time.time(), uuid.uuid4().hex[:12]
        self._card = model_card(predictor) | {"signal_check": signal_check}
        self._samples: deque = deque([(time.monotonic(), 0.0)], maxlen=256)  # (time, windows so far)
        pkg = resources.files("cascadeprune.serve") / "static"
        self._static = {name: (pkg / name).read_bytes() for name in STATIC}  # read once: a few kB

    # hooks called by the HTTP and MQTT sides ----------------------------------------------------------
    def answered(self, device: str | None, source: str, answers: list[dict], seconds: float) -> None:
        """One request or message answered (its answers as sent) in ``seconds``."""
        self.latency.add(source, seconds)
        if device is not None:
            self.board.answers(device, source, answers)

    def rejected(self, device: str | None, source: str, kind: str, message: str) -> None:
        if device is not None:
            self.board.rejected(device, source, kind, message)

    # endpoints -------------------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        def asset(name):
            async def serve(request):
                return Response(self._static[name], media_type=STATIC[name], headers=HEADERS)
            return serve

        async def devices(request):
            return JSONResponse(self.board.snapshot(), headers={"cache-control": "no-store"})

        async def status(request):
            return JSONResponse(self.status(), headers={"cache-control": "no-store"})

        return [Route("/", asset("index.html")), Route("/static/app.js", asset("app.js")),
                Route("/static/app.css", asset("app.css")), Route("/v1/devices", devices),
                Route("/v1/status", status)]

    def windows_per_s(self) -> tuple[float, float]:
        """(windows so far, windows/s over the last ~RATE_SPAN_S between status calls)."""
        total = self.metrics.batch.collect()[0]
        n = next((s.value for s in total.samples if s.name.endswith("_sum")), 0.0)
        now = time.monotonic()
        self._samples.append((now, n))
        # the newest sample at least RATE_SPAN_S old, else the oldest one kept
        base = next((s for s in reversed(self._samples) if now - s[0] >= RATE_SPAN_S), self._samples[0])
        dt = now - base[0]
        return n, round((n - base[1]) / dt, 2) if dt > 0 else 0.0

    def status(self) -> dict:
        total, rate = self.windows_per_s()
        broker = {"enabled": False}
        if self.mqtt is not None:
            broker = {"enabled": True, "address": f"{self.mqtt.host}:{self.mqtt.port}", "topic": self.mqtt.topic,
                      "client_id": self.mqtt.client_id, "connected": bool(self.mqtt.client.is_connected()),
                      "subscribed": self.mqtt.subscribed.is_set(), "unacknowledged": self.mqtt.pending(),
                      "client_id_clashes": self.mqtt.clashes}  # in a row now; 0 once a connection lasts
        now = time.time()
        return {"service": {"instance": self.instance, "started": self.started, "now": now,
                            "uptime_s": round(now - self.started, 1)},
                "model": self._card,
                "health": {"windows": total, "windows_per_s": rate, "errors": _counter(self.metrics.errors),
                           "sensor_faults": _counter(self.metrics.sensor_faults),
                           "http_requests": _counter(self.metrics.requests), "mqtt": _counter(self.metrics.mqtt),
                           "queue_depth": self.engine.queued(), "broker": broker},
                "latency": self.latency.percentiles()}
