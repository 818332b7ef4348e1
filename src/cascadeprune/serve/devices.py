"""What the operator page knows about each device and about recent latency; in memory, bounded.

A *device* is the ``<device>`` of an MQTT topic ``PREFIX/<device>/vibration``, or the ``device``
field (or ``?device=`` query parameter) of an HTTP request; HTTP requests without one are served
and counted but make no row. Each device keeps its last ``history`` results (a diagnosis with its
probability, or a rejected input), so the page can show counts per class and a history strip.

Results are the service's own answers: ``{"label", "probabilities"}`` (a diagnosis) or
``{"label": None, "sensor_fault": {...}}`` (a window the signal check refused to diagnose). A device
is flagged when its diagnosis changed within its last ``change_hold`` diagnoses, when the last
diagnosis is less sure than ``min_confidence``, or when its last result is a sensor fault. The board forgets everything on restart: it is
a view of what this process saw, not a store (the diagnoses themselves went out over MQTT/HTTP).

Example::

    board = DeviceBoard(("normal", "inner"), history=60, min_confidence=0.6)
    board.answers("pump-7", "mqtt", [{"label": "inner", "probabilities": {"normal": 0.2, "inner": 0.8}}])
    board.snapshot()["devices"][0]["label"]          # 'inner'
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict, deque

import numpy as np

DEVICE_RE = re.compile(r"[^\x00-\x1f\x7f/+#]{1,128}")  # what an MQTT topic level may hold, and short


def check_device(value) -> str | None:
    """``None`` when ``value`` is a usable device name, else why not (one line)."""
    if not isinstance(value, str):
        return f"\"device\" is {type(value).__name__}; expected a string (e.g. \"pump-7\")"
    if not DEVICE_RE.fullmatch(value):
        return (f"\"device\" {value[:40]!r} must be 1-128 characters without '/', '+', '#' or control "
                f"characters (an MQTT topic level)")
    return None


class _Device:
    __slots__ = ("name", "source", "results", "last_seen", "last_label", "since_change", "previous", "windows",
                 "errors", "last_error", "faults", "last_fault")

    def __init__(self, name: str, source: str, history: int):
        self.name, self.source = name, source
        self.results: deque = deque(maxlen=history)  # (time, kind, label or None, probability or None)
        self.last_seen = 0.0
        self.last_label: str | None = None
        self.since_change: int | None = None  # diagnoses since the label last changed; None: never changed
        self.previous: str | None = None  # the label before the last change
        self.windows = self.errors = self.faults = 0
        self.last_error: str | None = None
        self.last_fault: str | None = None


class DeviceBoard:
    """Thread-safe: the HTTP event loop and the engine thread (MQTT answers) both write."""

    def __init__(self, classes, history: int = 60, min_confidence: float = 0.6, change_hold: int = 10,
                 max_devices: int = 1000, clock=time.time):
        if history < 1 or max_devices < 1 or not 0.0 <= min_confidence <= 1.0:
            raise ValueError("history and max_devices must be positive and min_confidence in [0, 1]")
        self.classes = tuple(classes)
        self.history, self.min_confidence, self.change_hold = history, min_confidence, change_hold
        self.max_devices, self.clock = max_devices, clock
        self._devices: OrderedDict[str, _Device] = OrderedDict()  # least recently seen first
        self._lock = threading.Lock()
        self.evicted = 0

    def _get(self, name: str, source: str) -> _Device:
        d = self._devices.get(name)
        if d is None:
            d = self._devices[name] = _Device(name, source, self.history)
            if len(self._devices) > self.max_devices:  # a flood of topic names must not grow memory
                self._devices.popitem(last=False)
                self.evicted += 1
        else:
            self._devices.move_to_end(name)
        d.source = source
        return d

    def answers(self, device: str, source: str, answers: list[dict]) -> None:
        """Record the service's answers to one device's windows, in order."""
        now = self.clock()
        with self._lock:
            d = self._get(device, source)
            for a in answers:
                label = a.get("label")
                if label is None:  # a sensor fault: no diagnosis, the label history goes on unchanged
                    fault = a.get("sensor_fault") or {}
                    d.results.append((now, "sensor_fault", None, None))
                    d.faults += 1
                    d.last_fault = str(fault.get("message") or fault.get("kind") or "sensor fault")[:300]
                    continue
                if d.last_label is not None and label != d.last_label:
                    d.previous, d.since_change = d.last_label, 0
                elif d.since_change is not None:
                    d.since_change += 1
                d.last_label = label
                d.results.append((now, "diagnosis", label, float(a["probabilities"][label])))
            d.windows += len(answers)
            d.last_seen = now

    def rejected(self, device: str, source: str, kind: str, message: str) -> None:
        """Record a window the service refused (it counts in the strip, not in the class counts)."""
        now = self.clock()
        with self._lock:
            d = self._get(device, source)
            d.results.append((now, kind, None, None))
            d.errors += 1
            d.last_error = f"{kind}: {message}"[:300]
            d.last_seen = now

    def snapshot(self) -> dict:
        """JSON for ``GET /v1/devices``; most recently seen first."""
        with self._lock:
            rows = [self._row(d) for d in reversed(self._devices.values())]
        return {"now": self.clock(), "classes": list(self.classes), "history": self.history,
                "min_confidence": self.min_confidence, "change_hold": self.change_hold,
                "max_devices": self.max_devices, "evicted": self.evicted, "devices": rows}

    def _row(self, d: _Device) -> dict:
        diag = [r for r in d.results if r[1] == "diagnosis"]
        last = diag[-1] if diag else None
        counts = {c: 0 for c in self.classes}
        for r in diag:
            counts[r[2]] += 1
        changed = d.since_change is not None and d.since_change < self.change_hold
        low = last is not None and last[3] < self.min_confidence
        fault = bool(d.results) and d.results[-1][1] == "sensor_fault"
        return {"device": d.name, "source": d.source, "label": last[2] if last else None,
                "probability": round(last[3], 6) if last else None, "last_seen": d.last_seen,
                "windows": d.windows, "errors": d.errors, "last_error": d.last_error,
                "counts": counts, "changed": changed, "previous": d.previous if changed else None,
                "low_confidence": low, "sensor_fault": fault, "faults": d.faults, "last_fault": d.last_fault,
                "alert": changed or low or fault,
                "strip": [{"t": round(t, 3), "kind": kind, "label": lab, "p": None if p is None else round(p, 4)}
                          for t, kind, lab, p in d.results]}


class Recent:
    """The last ``size`` latencies (seconds) per source; percentiles on demand.

    Exact percentiles of recent requests (the Prometheus histogram's buckets are too coarse to read
    a p99 from)."""

    def __init__(self, size: int = 2048):
        self.size = size
        self._d: dict[str, deque] = {}
        self._lock = threading.Lock()

    def add(self, source: str, seconds: float) -> None:
        with self._lock:
            d = self._d.get(source)
            if d is None:
                d = self._d[source] = deque(maxlen=self.size)
            d.append(seconds)

    def percentiles(self) -> dict:
        with self._lock:
            data = {k: np.array(v) for k, v in self._d.items()}
        return {k: {"n": int(len(v)), **{f"p{q}_ms": round(float(np.percentile(v, q)) * 1e3, 3)
                                         for q in (50, 90, 99)}}
                for k, v in data.items() if len(v)}
