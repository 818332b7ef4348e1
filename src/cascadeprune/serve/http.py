"""The HTTP side: a Starlette (ASGI) app served by uvicorn; no hand-written HTTP parsing.

    POST /v1/predict   application/json {"signal": [...]} | {"signals": [[...], ...]}, optional "device"
                       application/octet-stream: float32 little-endian, a whole number of windows
                       (?device=NAME names the device either way; the operator page shows a row per device)
                       -> {"model", "predictions": [{"label", "probabilities"} or
                           {"label": null, "sensor_fault": {...}} per window], "latency_ms"}
    GET  /health       model id, window, sample rate, classes, runtime, signal-check thresholds
    GET  /metrics      Prometheus text
    GET  /, /v1/devices, /v1/status   the operator page and its JSON (serve/ui.py; off with --no-ui)

Example (see :func:`cascadeprune.serve.service.run_service` for the server around it)::

    app = create_app(predictor, Diagnoser(predictor, Engine(predictor), metrics, thresholds), metrics)
    uvicorn.run(app, host="127.0.0.1", port=8080)
"""

from __future__ import annotations

import asyncio
import time

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cascadeprune.errors import CascadePruneError
from cascadeprune.serve.devices import check_device
from cascadeprune.serve.logs import log
from cascadeprune.serve.payload import BadInput, parse_json, parse_raw

ROUTES = ("/v1/predict", "/health", "/metrics")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit`` bytes.

    A declared Content-Length is checked before anything is read; a chunked body is counted as it
    streams in, so an endless upload never sits in memory.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadInput("bad_header", f"Content-Length {declared[:20]!r} is not a byte count", status=400)
        if int(declared) > limit:
            raise BadInput("too_large", f"body of {int(declared)} bytes is over the limit of {limit} bytes "
                                        f"(--max-body-bytes); send fewer windows per request", status=413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadInput("too_large", f"body is over the limit of {limit} bytes (--max-body-bytes); "
                                        f"send fewer windows per request", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(predictor, diagnoser, metrics, max_body_bytes: int = 1 << 20, signal_check: dict | None = None,
               ui=None) -> Starlette:
    """``diagnoser``: a :class:`cascadeprune.serve.diagnose.Diagnoser` (signal check, then the engine);
    ``signal_check``: its thresholds and their source, shown by /health (None: the check is off);
    ``ui``: a :class:`cascadeprune.serve.ui.OperatorUI` adds the page and records devices (None: no page)."""
    classes = tuple(predictor.classes)

    def reject(e: BadInput) -> JSONResponse:
        metrics.errors.labels(kind=e.kind).inc()
        log("error", where="http", kind=e.kind, status=e.status, message=str(e))
        return JSONResponse({"error": str(e)}, status_code=e.status)

    async def predict(request: Request) -> Response:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in ("application/json", "application/octet-stream"):
            return reject(BadInput("content_type", f"Content-Type {media or '(none)'!r} is not supported; send "
                                                   f"application/json or application/octet-stream", status=415))
        try:
            body = await read_body(request, max_body_bytes)
            t0 = time.perf_counter()
            if media == "application/json":
                parsed = parse_json(body, predictor.window, predictor.sample_rate)
            else:
                parsed = parse_raw(body, predictor.window)
            device = parsed.device if parsed.device is not None else request.query_params.get("device")
            if device is not None and (why := check_device(device)) is not None:
                raise BadInput("bad_device", why)
            answers = await asyncio.wrap_future(diagnoser.submit(parsed.windows))
        except BadInput as e:
            return reject(e)
        except ClientDisconnect:  # the client gave up mid-upload: nobody to answer, not our error
            return Response(status_code=400)
        except CascadePruneError as e:  # the engine refuses work once shutdown began
            return JSONResponse({"error": str(e)}, status_code=503)
        dt = time.perf_counter() - t0
        metrics.latency.observe(dt)
        if ui is not None:
            ui.answered(device, "http", answers, dt)
        return JSONResponse({"model": predictor.model_id, "predictions": answers,
                             "latency_ms": round(dt * 1e3, 3)})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": predictor.model_id, "window": predictor.window,
                             "sample_rate": predictor.sample_rate, "classes": list(classes),
                             "runtime": predictor.runtime, "signal_check": signal_check})

    async def prometheus(request: Request) -> Response:
        body, ctype = metrics.render()
        return Response(body, media_type=ctype)

    listing = "POST /v1/predict, GET /health, GET /metrics" + (", GET / (the operator page), GET /v1/devices, "
                                                               "GET /v1/status" if ui is not None else "")

    async def http_error(request: Request, exc: HTTPException) -> Response:
        return JSONResponse({"error": f"{exc.detail}: {request.method} {request.url.path}; routes are {listing}"},
                            status_code=exc.status_code)

    async def server_error(request: Request, exc: Exception) -> Response:
        metrics.errors.labels(kind="internal").inc()
        log("error", where="http", kind="internal", message=f"{type(exc).__name__}: {exc}")
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); see the service log"},
                            status_code=500)

    app = Starlette(routes=[Route("/v1/predict", predict, methods=["POST"]), Route("/health", health),
                            Route("/metrics", prometheus)] + (ui.routes() if ui is not None else []),
                    exception_handlers={HTTPException: http_error, Exception: server_error})
    return CountRequests(app, metrics, [r.path for r in app.routes])


class CountRequests:
    """ASGI wrapper counting every answered request by route and status (404s too)."""

    def __init__(self, app, metrics, routes=ROUTES):
        self.app, self.metrics, self.routes = app, metrics, frozenset(routes)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = 500

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            path = scope["path"] if scope["path"] in self.routes else "other"
            self.metrics.requests.labels(path=path, status=str(status)).inc()
