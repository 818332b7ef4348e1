"""A vibration record, the data directory, and resampling with anti-aliasing.

Every reader returns :class:`Recording` objects at their native rate; protocols resample them to
one working rate (12 kHz by default) with :func:`resample`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from cascadeprune.errors import CascadePruneError

DATA_ENV = "CASCADEPRUNE_DATA"


class DataError(CascadePruneError):
    """A data file is missing, corrupt, or unusable; the message names the file."""


@dataclass
class Recording:
    """One channel of one record. ``file`` is the id shown in audits (e.g. ``cwru/105.mat``)."""

    file: str
    signal: np.ndarray  # float64, 1-D
    fs: float
    label: str  # class name, e.g. "IR007", "normal", "inner_race"
    load: float  # CWRU: hp; MFPT: lbs; synthetic: hp
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        check_signal(self.signal, self.file)


def check_signal(x: np.ndarray, where: str) -> None:
    if x.ndim != 1 or x.size == 0:
        raise DataError(f"{where}: expected a non-empty 1-D signal, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise DataError(f"{where}: {bad} sample(s) are NaN or Inf")


def resample(x: np.ndarray, fs_from: float, fs_to: float, where: str = "signal") -> np.ndarray:
    """Resample with a polyphase anti-aliasing filter (exact rational ratio)."""
    if fs_from == fs_to:
        return x
    if fs_from <= 0 or fs_to <= 0:
        raise DataError(f"{where}: unknown sampling rate {fs_from} Hz")
    ratio = Fraction(int(round(fs_to)), int(round(fs_from)))
    return resample_poly(x, ratio.numerator, ratio.denominator)


def data_dir(explicit: str | Path | None = None) -> Path:
    """Where real data lives: ``explicit``, else $CASCADEPRUNE_DATA, else ./data, else ../shared/data."""
    if explicit:
        return Path(explicit)
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    for candidate in (Path("data"), Path("..") / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    return Path("data")
