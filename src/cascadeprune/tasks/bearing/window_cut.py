"""Cut one window from a recording into what the service takes (``cascadeprune data window``).

A recording is a CWRU ``.mat`` file (drive-end channel by default; its sampling rate from the
catalogue, or ``fs``) or a ``.csv`` / ``.txt`` file of samples (one number per line, or a column of a
table with a header: ``column`` names it; ``fs`` is required, a CSV carries no rate). The signal is
resampled to the model's rate the way the protocols do it, and ``window`` samples are taken from
``offset`` (counted at the model's rate). Output: JSON ``{"id", "signal", "sample_rate"}`` for HTTP
and MQTT, or raw float32 little-endian (``f32``).

Example::

    x, fs = cut_window("cwru/105.mat", window=512, sample_rate=12000.0, offset=0)
    Path("window.json").write_bytes(encode_window(x, fs, "json", rid="pump7-000123"))
"""

from __future__ import annotations

import csv
import json
import math
import os
import uuid
from pathlib import Path

import numpy as np

from cascadeprune.errors import CascadePruneError
from cascadeprune.tasks.bearing.recording import resample

FORMATS = ("json", "f32")


def read_samples(path: str | Path, fs: float | None = None, channel: str = "DE",
                 column: str | None = None) -> tuple[np.ndarray, float]:
    """(samples float64, sampling rate in Hz) of a .mat or .csv/.txt recording."""
    p = Path(path)
    if not p.is_file():
        raise CascadePruneError(f"{path}: no such file")
    if fs is not None and (not math.isfinite(fs) or fs <= 0):
        raise CascadePruneError(f"--fs must be a positive number of Hz, got {fs}")
    suffix = p.suffix.lower()
    if suffix == ".mat":
        from cascadeprune.tasks.bearing.cwru import read_cwru

        try:
            rec = read_cwru(p, channel=channel, fs=fs)
        except ValueError as e:  # file_number: a .mat not named like a CWRU file
            raise CascadePruneError(f"{path}: {e}") from None
        return np.asarray(rec.signal, np.float64), rec.fs
    if suffix in (".csv", ".txt"):
        if fs is None:
            raise CascadePruneError(f"{path}: a CSV file carries no sampling rate; pass --fs HZ")
        return _read_csv(p, column), float(fs)
    raise CascadePruneError(f"{path}: unsupported file type {suffix or '(none)'!r}; give a CWRU .mat or a .csv/.txt "
                            f"of samples")


def _read_csv(p: Path, column: str | None) -> np.ndarray:
    with open(p, newline="") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    if not rows:
        raise CascadePruneError(f"{p}: no samples")
    header = None
    try:
        float(rows[0][0 if column is None or not column.isdigit() else int(column)])
    except (ValueError, IndexError):
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    if not rows:
        raise CascadePruneError(f"{p}: a header and no samples")
    if column is None:
        if len(rows[0]) != 1:
            raise CascadePruneError(f"{p}: {len(rows[0])} columns; name one with --column (a header name or a "
                                    f"0-based index)")
        col = 0
    elif column.isdigit():
        col = int(column)
    elif header and column in header:
        col = header.index(column)
    else:
        raise CascadePruneError(f"{p}: no column {column!r} (header: {', '.join(header or []) or 'none'})")
    out = np.empty(len(rows))
    first = 2 if header else 1
    for i, r in enumerate(rows):
        try:
            out[i] = float(r[col])
        except IndexError:
            raise CascadePruneError(f"{p} line {first + i}: no column {col}") from None
        except ValueError:
            raise CascadePruneError(f"{p} line {first + i}: {r[col][:30]!r} is not a number") from None
    return out


def cut_window(path: str | Path, window: int, sample_rate: float, offset: int = 0, fs: float | None = None,
               channel: str = "DE", column: str | None = None) -> tuple[np.ndarray, float]:
    """float32 [window] from ``offset`` (samples at ``sample_rate``) and that rate."""
    if isinstance(offset, bool) or offset < 0:
        raise CascadePruneError(f"--offset must be a sample index >= 0, got {offset}")
    if window < 2:
        raise CascadePruneError(f"--window must be at least 2 samples, got {window}")
    x, rate = read_samples(path, fs, channel, column)
    x = resample(x, rate, sample_rate, str(path))
    if offset + window > len(x):
        raise CascadePruneError(f"--offset {offset} + window {window} runs past the end of {path} ({len(x)} samples "
                                f"at {sample_rate:g} Hz; the last window starts at {max(0, len(x) - window)})")
    w = x[offset:offset + window]
    with np.errstate(over="ignore"):
        w32 = w.astype(np.float32)
    bad = ~np.isfinite(w32)
    if bad.any():
        raise CascadePruneError(f"{path}: the window has {int(bad.sum())} NaN/Inf or beyond-float32 sample(s) (first "
                                f"at offset {offset + int(np.flatnonzero(bad)[0])}); the service would refuse it")
    return w32, float(sample_rate)


def encode_window(x: np.ndarray, sample_rate: float, fmt: str, rid: str | None = None) -> bytes:
    if fmt not in FORMATS:
        raise CascadePruneError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if fmt == "f32":
        return np.ascontiguousarray(x, dtype="<f4").tobytes()
    body = ({"id": rid} if rid is not None else {}) | {"signal": [float(v) for v in x], "sample_rate": sample_rate}
    return (json.dumps(body) + "\n").encode()


def write_file_atomic(path: Path, body: bytes) -> None:
    """Write beside the target, then rename: a reader never sees half a window."""
    tmp = path.parent / f".{path.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        tmp.write_bytes(body)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise CascadePruneError(f"cannot write --out {path}: {e.strerror or e}") from None
