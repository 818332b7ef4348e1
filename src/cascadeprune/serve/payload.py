"""Parse and check vibration windows from request bodies and MQTT payloads.

Every rejection is a :class:`BadInput` with a ``kind`` (a metrics label), an HTTP ``status`` and
one line saying what is wrong and what was expected. Accepted forms:

- JSON ``{"signal": [floats]}`` (one window) or ``{"signals": [[floats], ...]}`` (several), with
  an optional ``"sample_rate"`` that must equal the model's (no resampling happens here) and, over
  MQTT, an optional ``"id"``;
- raw float32 little-endian samples: over HTTP a whole number of windows, over MQTT one window.

Example::

    >>> parse_json(b'{"signal": [0.0, 1.0]}', window=2, sample_rate=12000.0).windows.shape
    (1, 2)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from cascadeprune.errors import CascadePruneError

ID_TYPES = (str, int)


class BadInput(CascadePruneError):
    """A payload the service rejects; ``kind`` labels the error metric, ``status`` is the HTTP code."""

    def __init__(self, kind: str, message: str, status: int = 422):
        super().__init__(message)
        self.kind, self.status = kind, status


@dataclass
class Parsed:
    windows: np.ndarray  # float32 [n, window]
    id: str | int | None = None
    device: object = None  # JSON "device" as sent (HTTP names its device here; checked by the caller)


def _finite(x: np.ndarray, where: str) -> np.ndarray:
    # NaN/Inf would propagate silently through softmax; a value beyond float32 overflows to Inf on the cast
    bad = ~np.isfinite(x)
    if bad.any():
        i = int(np.flatnonzero(bad.reshape(-1))[0])
        raise BadInput("not_finite", f"{where} has {int(bad.sum())} NaN/Inf or beyond-float32 value(s) "
                                     f"(first at sample {i}); expected finite numbers")
    return x


def _window(values, window: int, where: str) -> np.ndarray:
    if not isinstance(values, list):
        raise BadInput("non_numeric", f"{where} must be a list of {window} numbers, got {type(values).__name__}")
    if len(values) != window:
        raise BadInput("wrong_length", f"{where} has {len(values)} samples; expected {window} (the model's window)")
    # bool is an int subclass and numpy would turn "1.5" into 1.5: check the JSON types themselves
    for i, v in enumerate(values):
        if type(v) not in (int, float):
            raise BadInput("non_numeric", f"{where}[{i}] is {json.dumps(v)[:40]}; expected a number")
    with np.errstate(over="ignore"):
        return _finite(np.asarray(values, dtype=np.float64).astype(np.float32), where)


def _non_finite_constant(name: str):
    # json.loads accepts the non-standard NaN/Infinity tokens; keep them as floats for _finite to name
    return float(name.replace("Infinity", "inf"))


def parse_json(body: bytes, window: int, sample_rate: float, many: bool = True) -> Parsed:
    """Windows from a JSON object; ``many=False`` (MQTT) refuses ``"signals"``."""
    if not body.strip():
        raise BadInput("empty", "empty body; expected JSON {\"signal\": [...]} or float32 samples", status=400)
    try:
        obj = json.loads(body, parse_constant=_non_finite_constant)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadInput("malformed_json", f"malformed JSON ({e}); expected {{\"signal\": [{window} numbers]}}",
                       status=400) from None
    if not isinstance(obj, dict):
        raise BadInput("malformed_json", f"JSON body is a {type(obj).__name__}; expected an object "
                                         f"{{\"signal\": [{window} numbers]}}", status=400)
    rid = obj.get("id")
    if rid is not None and (type(rid) not in ID_TYPES or isinstance(rid, bool)):
        raise BadInput("bad_id", f"\"id\" is {json.dumps(rid)[:40]}; expected a string or an integer")
    rate = obj.get("sample_rate")
    if rate is not None:
        if type(rate) not in (int, float) or not math.isfinite(rate):
            raise BadInput("sample_rate", f"\"sample_rate\" is {json.dumps(rate)[:40]}; expected a number in Hz")
        if abs(rate - sample_rate) > 1e-6 * sample_rate:
            raise BadInput("sample_rate", f"sample_rate {rate:g} Hz does not match the model's {sample_rate:g} Hz; "
                                          f"resample before sending")
    keys = [k for k in ("signal", "signals") if k in obj]
    if keys == ["signal"]:
        return Parsed(_window(obj["signal"], window, "signal")[None], rid, obj.get("device"))
    if keys == ["signals"] and many:
        sigs = obj["signals"]
        if not isinstance(sigs, list) or not sigs:
            raise BadInput("wrong_length", f"\"signals\" must be a non-empty list of windows of {window} numbers")
        return Parsed(np.stack([_window(s, window, f"signals[{i}]") for i, s in enumerate(sigs)]), rid,
                      obj.get("device"))
    want = "\"signal\" or \"signals\"" if many else "\"signal\""
    got = "both" if len(keys) == 2 else ("\"signals\"" if keys else f"keys {sorted(obj)[:5]}")
    raise BadInput("wrong_length" if keys else "malformed_json", f"expected exactly one of {want}, got {got}",
                   status=422 if keys else 400)


def parse_raw(body: bytes, window: int, max_windows: int | None = None) -> Parsed:
    """float32 little-endian samples: a whole number of windows (``max_windows=1`` for MQTT)."""
    if not body:
        raise BadInput("empty", "empty body; expected float32 little-endian samples", status=400)
    per = 4 * window
    if len(body) % per or (max_windows is not None and len(body) // per > max_windows):
        n = "exactly one window" if max_windows == 1 else "a whole number of windows"
        raise BadInput("wrong_length", f"{len(body)} bytes is not {n} of {window} float32 samples "
                                       f"({per} bytes each)")
    x = np.frombuffer(body, dtype="<f4").astype(np.float32).reshape(-1, window)
    return Parsed(_finite(x, "signal"))


def parse_mqtt(payload: bytes, window: int, sample_rate: float) -> Parsed:
    """One window from an MQTT payload: a JSON object when it parses as one, else raw float32.

    Raw float32 bytes that happen to parse as a JSON object are practically impossible; a payload
    that starts like JSON but does not parse, and is not a window's worth of bytes, is malformed JSON.
    """
    if payload.lstrip()[:1] == b"{":
        try:
            return parse_json(payload, window, sample_rate, many=False)
        except BadInput as e:
            if e.kind != "malformed_json" or len(payload) != 4 * window:
                raise
    return parse_raw(payload, window, max_windows=1)
