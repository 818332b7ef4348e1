"""Structured logs: one JSON object per line on stderr (start, stop, connection changes, errors).

    log("start", model="gpt2-mini", http="127.0.0.1:8080")
    # {"ts": "2026-12-02T10:00:00.123Z", "event": "start", "model": "gpt2-mini", "http": "127.0.0.1:8080"}
"""

from __future__ import annotations

import datetime
import json
import sys
import threading

_lock = threading.Lock()  # lines from the HTTP, MQTT and engine threads must not interleave


def log(event: str, **fields) -> None:
    ts = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    line = json.dumps({"ts": ts, "event": event, **fields}, default=str)
    with _lock:
        print(line, file=sys.stderr, flush=True)
