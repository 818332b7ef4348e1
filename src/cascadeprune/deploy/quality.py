"""Signal quality before diagnosis: tell a faulty sensor from a faulty bearing.

A flat-lined (disconnected) accelerometer, a signal clipped at the converter's rails, or a sensor
stuck on one value still makes a window of numbers, and a classifier will happily call it a
bearing fault. Each window is checked first, in this order (the first rule that fires names it):

- ``flat``: the window's standard deviation is below ``min_std`` (near-zero variance);
- ``clipped``: the share of samples sitting at the window's own maximum or minimum (within
  ``rail_tolerance`` of its peak-to-peak range, the larger of the two sides) is above
  ``max_rail_fraction``. A clean vibration window touches its extremes once or twice; a signal
  cut off at a rail sits there for a run of samples. Nothing needs the rail's level in volts or g;
- ``stuck``: the share of consecutive identical samples (``x[i] == x[i-1]``) is above
  ``max_repeat_fraction``.

Thresholds come from the training windows' own statistics, measured at export and stored in
``deploy.json`` (``signal_quality``): see :func:`thresholds_from`. An artifact without them (exported
before this check existed, or a classifier directory served through PyTorch) gets
:data:`DEFAULT_THRESHOLDS`, which only flag grossly faulty windows.

Example::

    >>> import numpy as np
    >>> check_windows(np.zeros((1, 2048), np.float32), DEFAULT_THRESHOLDS)[0]["kind"]
    'flat'
"""

from __future__ import annotations

import math

import numpy as np

from cascadeprune.errors import CascadePruneError

RAIL_TOLERANCE = 1e-3  # a sample "at a rail" is within 0.1 % of the window's range from its max or min
# Margins over the training data (a test window of an unseen load must pass; a fault must not)
STD_MARGIN = 0.1  # flat below a tenth of the quietest training window's std
FRACTION_MARGIN = 4.0  # clipped / stuck above four times the most any training window showed ...
RAIL_FLOOR, REPEAT_FLOOR = 0.02, 0.05  # ... and never below these shares of the window
FRACTION_CAP = 0.5  # a threshold above half the window would never fire on a real fault

# No training statistics: flag only what no real vibration window does (a constant window, a tenth of
# the samples at a rail, half the samples repeating the previous one)
DEFAULT_THRESHOLDS = {"min_std": 1e-6, "max_rail_fraction": 0.1, "max_repeat_fraction": 0.5,
                      "rail_tolerance": RAIL_TOLERANCE}
THRESHOLD_KEYS = tuple(DEFAULT_THRESHOLDS)
FAULT_KINDS = ("flat", "clipped", "stuck")


def window_statistics(x: np.ndarray, rail_tolerance: float = RAIL_TOLERANCE) -> dict[str, np.ndarray]:
    """Per-window std, rail fraction, repeat fraction and peak |x| of float [n, window]."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise CascadePruneError(f"windows must be [n, window >= 2], got shape {list(x.shape)}")
    hi, lo = x.max(axis=1, keepdims=True), x.min(axis=1, keepdims=True)
    tol = rail_tolerance * (hi - lo)
    rail = np.maximum((x >= hi - tol).mean(axis=1), (x <= lo + tol).mean(axis=1))
    return {"std": x.std(axis=1), "rail_fraction": rail,
            "repeat_fraction": (np.diff(x, axis=1) == 0).mean(axis=1), "peak_abs": np.abs(x).max(axis=1)}


def _summary(v: np.ndarray) -> dict[str, float]:
    return {k: float(f(v)) for k, f in (("min", np.min), ("p1", lambda a: np.percentile(a, 1)),
                                        ("median", np.median), ("p99", lambda a: np.percentile(a, 99)),
                                        ("max", np.max))}


def thresholds_from(stats: dict) -> dict[str, float]:
    """Thresholds from the summary of training windows (``signal_quality.statistics``)."""
    cap = lambda v: float(min(FRACTION_CAP, v))  # noqa: E731
    return {"min_std": float(STD_MARGIN * stats["std"]["min"]),
            "max_rail_fraction": cap(max(RAIL_FLOOR, FRACTION_MARGIN * stats["rail_fraction"]["max"])),
            "max_repeat_fraction": cap(max(REPEAT_FLOOR, FRACTION_MARGIN * stats["repeat_fraction"]["max"])),
            "rail_tolerance": RAIL_TOLERANCE}


def signal_quality_record(train_x: np.ndarray, protocol: str) -> dict:
    """What export stores in ``deploy.json`` as ``signal_quality``: statistics and thresholds."""
    per = window_statistics(train_x)
    stats = {"windows": int(len(train_x)), "window": int(train_x.shape[1]), "split": "train", "protocol": protocol,
             **{k: _summary(v) for k, v in per.items()}}
    return {"statistics": stats, "thresholds": thresholds_from(stats),
            "rules": "flat: std < min_std; clipped: share of samples within rail_tolerance x range of the window's "
                     "max or min > max_rail_fraction; stuck: share of x[i] == x[i-1] > max_repeat_fraction"}


def resolve_thresholds(record: dict | None, overrides: dict | None = None) -> tuple[dict[str, float], str]:
    """(thresholds, where they came from): deploy.json's, else the defaults; then the overrides
    (``None`` values ignored). Every value is checked: a bad one is a one-line error naming it."""
    if record and isinstance(record.get("thresholds"), dict):
        base, source = {**DEFAULT_THRESHOLDS, **record["thresholds"]}, "deploy.json"
    else:
        base, source = dict(DEFAULT_THRESHOLDS), "defaults (deploy.json has no signal_quality)"
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(given) - set(THRESHOLD_KEYS))
    if unknown:
        raise CascadePruneError(f"unknown signal-quality threshold(s) {unknown}; known: {', '.join(THRESHOLD_KEYS)}")
    if given:
        source += " with overrides " + ", ".join(f"{k}={v:g}" for k, v in given.items())
    out = {**base, **given}
    for k, v in out.items():
        where = f"--{k.replace('_', '-')}" if k in given else f"signal_quality.thresholds.{k} ({source})"
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise CascadePruneError(f"{where} must be a finite number >= 0, got {v!r}")
        if k != "min_std" and v > 1:
            raise CascadePruneError(f"{where} is a share of the window: between 0 and 1, got {v!r}")
    return {k: float(v) for k, v in out.items()}, source


def check_windows(x: np.ndarray, thresholds: dict[str, float]) -> list[dict | None]:
    """One entry per window: ``None`` when it passes, else the fault
    ``{"kind", "statistic", "value", "threshold", "message"}`` of the first rule that fires."""
    s = window_statistics(x, thresholds["rail_tolerance"])
    out: list[dict | None] = []
    for i in range(len(s["std"])):
        fault = None
        if s["std"][i] < thresholds["min_std"]:
            fault = ("flat", "std", s["std"][i], thresholds["min_std"],
                     "flat line: the window barely varies (sensor disconnected or dead?)")
        elif s["rail_fraction"][i] > thresholds["max_rail_fraction"]:
            fault = ("clipped", "rail_fraction", s["rail_fraction"][i], thresholds["max_rail_fraction"],
                     "clipped: many samples sit at the window's maximum or minimum (saturated sensor or input range?)")
        elif s["repeat_fraction"][i] > thresholds["max_repeat_fraction"]:
            fault = ("stuck", "repeat_fraction", s["repeat_fraction"][i], thresholds["max_repeat_fraction"],
                     "stuck: many samples repeat the previous value exactly (sensor or acquisition stuck?)")
        if fault:
            kind, stat, value, thr, msg = fault
            out.append({"kind": kind, "statistic": stat, "value": round(float(value), 9), "threshold": thr,
                        "message": f"{msg}; {stat} {float(value):.4g} vs threshold {thr:.4g}"})
        else:
            out.append(None)
    return out
