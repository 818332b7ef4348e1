"""Run HTTP and/or MQTT around one loaded model until SIGTERM/SIGINT, then drain and exit 0.

Shutdown order matters: HTTP stops accepting and finishes its open requests, then MQTT stops taking
messages and waits until every accepted one is answered and acknowledged, and only then does the
engine stop (both sides need it until their last answer).

Example::

    run_service("exports/gpt2-mini-8x", http="127.0.0.1:8080", mqtt="mqtt://127.0.0.1:1883")
"""

from __future__ import annotations

import signal
import threading
import time

from cascadeprune.errors import CascadePruneError
from cascadeprune.serve.logs import log


def parse_hostport(value: str, what: str = "--http") -> tuple[str, int]:
    """``HOST:PORT`` (or ``:PORT`` for all interfaces) -> (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise CascadePruneError(f"{what} {value!r} is not HOST:PORT (e.g. 127.0.0.1:8080)")
    return host.strip("[]") or "0.0.0.0", int(port)


class Service:
    """The parts of a running service; ``start`` returns once it listens, ``stop`` drains."""

    def __init__(self, artifact: str, http: str | None = None, mqtt: str | None = None,
                 topic_prefix: str = "cascadeprune", client_id: str | None = None, threads: int = 1,
                 max_batch: int = 16, max_body_bytes: int = 1 << 20, runtime: str | None = None,
                 signal_check: bool = True, thresholds: dict | None = None, ui: bool = True,
                 ui_history: int = 60, ui_min_confidence: float = 0.6):
        """``thresholds``: signal-quality overrides (``min_std``, ``max_rail_fraction``,
        ``max_repeat_fraction``, ``rail_tolerance``; None values ignored) over deploy.json's;
        ``signal_check=False`` answers every window with a bearing class. ``ui``: the operator page on
        the HTTP side (serve/ui.py), keeping ``ui_history`` results per device and highlighting a
        diagnosis less sure than ``ui_min_confidence``."""
        from cascadeprune.deploy.quality import resolve_thresholds
        from cascadeprune.deploy.runtime import load_predictor
        from cascadeprune.serve.diagnose import Diagnoser
        from cascadeprune.serve.engine import Engine
        from cascadeprune.serve.metrics import Metrics

        if not http and not mqtt:
            raise CascadePruneError("nothing to serve: pass --http HOST:PORT and/or --mqtt mqtt://HOST:PORT")
        if ui_history < 1 or not 0.0 <= ui_min_confidence <= 1.0:
            raise CascadePruneError(f"--ui-history must be positive and --ui-min-confidence in [0, 1], got "
                                    f"{ui_history}, {ui_min_confidence}")
        if threads < 1 or max_batch < 1 or max_body_bytes < 1:
            raise CascadePruneError(f"--threads, --max-batch and --max-body-bytes must be positive, got "
                                    f"{threads}, {max_batch}, {max_body_bytes}")
        if not signal_check and any(v is not None for v in (thresholds or {}).values()):
            raise CascadePruneError("--no-signal-check turns the check off; drop it or the threshold flags")
        self.http_addr = parse_hostport(http) if http else None
        self.mqtt_url = mqtt
        t0 = time.perf_counter()
        self.predictor = load_predictor(artifact, threads=threads, runtime=runtime)
        self.load_s = time.perf_counter() - t0
        if signal_check:
            limits, source = resolve_thresholds(self.predictor.signal_quality, thresholds)
            self.signal_check = {"thresholds": limits, "source": source}
        else:
            limits, self.signal_check = None, None
        self.metrics = Metrics()
        self.engine = Engine(self.predictor, max_batch=max_batch, on_batch=self.metrics.on_batch)
        self.diagnoser = Diagnoser(self.predictor, self.engine, self.metrics, limits)
        self.server = self.mqtt = self.ui = None
        if http and ui:  # the operator page lives on the HTTP side; MQTT answers feed its device board
            from cascadeprune.serve.ui import OperatorUI

            self.ui = OperatorUI(self.predictor, self.engine, self.metrics, history=ui_history,
                                 min_confidence=ui_min_confidence, signal_check=self.signal_check)
        self._http_thread = None
        self.artifact, self.threads, self.max_batch = str(artifact), threads, max_batch
        if http:
            import uvicorn

            from cascadeprune.serve.http import create_app

            app = create_app(self.predictor, self.diagnoser, self.metrics, max_body_bytes=max_body_bytes,
                             signal_check=self.signal_check, ui=self.ui)
            # log_config=None: uvicorn's own warnings go through the root logger; no access log, our
            # metrics count requests and our log names each rejection
            self.server = uvicorn.Server(uvicorn.Config(app, host=self.http_addr[0], port=self.http_addr[1],
                                                        log_config=None, access_log=False, lifespan="off",
                                                        timeout_graceful_shutdown=30))
        if mqtt:
            from cascadeprune.serve.mqtt import MqttWorker

            self.mqtt = MqttWorker(mqtt, self.predictor, self.diagnoser, self.metrics, prefix=topic_prefix,
                                   client_id=client_id, ui=self.ui)
            if self.ui is not None:
                self.ui.mqtt = self.mqtt

    def start(self, timeout: float = 30.0) -> None:
        if self.mqtt:
            self.mqtt.start()
        if self.server:
            # not the main thread: uvicorn then leaves signal handling to us
            self._http_thread = threading.Thread(target=self.server.run, name="cascadeprune-http", daemon=True)
            self._http_thread.start()
            deadline = time.monotonic() + timeout
            while not self.server.started:
                if not self._http_thread.is_alive() or time.monotonic() > deadline:
                    raise CascadePruneError(f"could not listen on {self.http_addr[0]}:{self.http_addr[1]} "
                                            f"(in use, or not an address of this machine?)")
                time.sleep(0.01)
        log("start", model=self.predictor.model_id, artifact=self.artifact, runtime=self.predictor.runtime,
            window=self.predictor.window, sample_rate=self.predictor.sample_rate, classes=list(self.predictor.classes),
            http=f"{self.http_addr[0]}:{self.http_addr[1]}" if self.server else None, mqtt=self.mqtt_url,
            topic=self.mqtt.topic if self.mqtt else None, client_id=self.mqtt.client_id if self.mqtt else None,
            threads=self.threads, max_batch=self.max_batch, load_s=round(self.load_s, 3),
            signal_check=self.signal_check,
            ui=f"http://{self.http_addr[0]}:{self.http_addr[1]}/" if self.ui else None)
        if self.signal_check and self.signal_check["source"].startswith("defaults"):
            log("warning", where="signal_check", kind="no_training_statistics",
                message=f"{self.artifact} has no signal_quality in deploy.json (exported before it existed, or a "
                        f"classifier directory): only grossly faulty windows are flagged; re-export for thresholds "
                        f"from the training data")

    def stop(self) -> dict:
        t0 = time.perf_counter()
        if self.server:
            self.server.should_exit = True
            self._http_thread.join()
        unacked = self.mqtt.stop() if self.mqtt else 0
        self.engine.close()
        info = {"drain_s": round(time.perf_counter() - t0, 3), "mqtt_unacknowledged": unacked}
        log("stop", model=self.predictor.model_id, **info)
        return info


def run_service(artifact: str, **kwargs) -> int:
    """Serve until SIGTERM or SIGINT; exit code 0 after a clean drain, 1 if the HTTP server died."""
    stop, code = threading.Event(), 0
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        service = Service(artifact, **kwargs)
        service.start()
        while not stop.wait(0.5):
            if service._http_thread is not None and not service._http_thread.is_alive():
                log("error", where="http", kind="server_exit", message="the HTTP server stopped by itself")
                code = 1
                break
        service.stop()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    return code
