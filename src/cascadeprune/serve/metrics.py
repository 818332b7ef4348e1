"""Prometheus metrics of one service, in its own registry (two services in one process stay apart).

Every metric here is documented in docs/serve.md (name, type, labels, meaning); a test holds them
in step.

    m = Metrics(); m.errors.labels(kind="not_finite").inc(); print(m.render()[0].decode())
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# seconds: a tiny model answers in ~0.3 ms, a 12-layer one in tens of ms, a queue under load in more
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class Metrics:
    def __init__(self):
        self.registry = r = CollectorRegistry()
        self.requests = Counter("cascadeprune_http_requests", "HTTP requests by path and status",
                                ["path", "status"], registry=r)
        self.latency = Histogram("cascadeprune_http_request_duration_seconds",
                                 "POST /v1/predict, body received to answer ready", buckets=LATENCY_BUCKETS,
                                 registry=r)
        self.errors = Counter("cascadeprune_errors", "rejected inputs and failures by kind", ["kind"], registry=r)
        self.mqtt = Counter("cascadeprune_mqtt_messages", "MQTT messages in (vibration) and out "
                            "(diagnosis, error)", ["direction", "kind"], registry=r)
        self.mqtt_dropped = Counter("cascadeprune_mqtt_dropped", "MQTT messages taken without an answer of their "
                                    "own, by reason", ["reason"], registry=r)
        self.mqtt_clashes = Counter("cascadeprune_mqtt_client_id_clashes", "times the broker handed this "
                                    "service's session to another client with the same client id", registry=r)
        self.mqtt_connected = Gauge("cascadeprune_mqtt_connected", "1 while connected to the broker", registry=r)
        self.sensor_faults = Counter("cascadeprune_sensor_faults", "windows answered sensor_fault instead of a "
                                     "bearing class, by kind", ["kind"], registry=r)
        self.batch = Histogram("cascadeprune_batch_windows", "windows per model call",
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r)
        self.inference = Histogram("cascadeprune_inference_seconds", "model call time per batch",
                                   buckets=LATENCY_BUCKETS, registry=r)

    def on_batch(self, n: int, seconds: float) -> None:
        self.batch.observe(n)
        self.inference.observe(seconds)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
