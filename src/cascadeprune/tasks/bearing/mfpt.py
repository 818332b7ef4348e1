"""MFPT bearing fault data (48,828 Hz; inner and outer race faults; no healthy class here).

Each file holds a struct ``bearing`` with fields ``gs`` (signal), ``sr`` (rate), ``rate`` (shaft
Hz) and ``load`` (lbs).

Example::

    rec = read_mfpt(data_dir() / "mfpt" / "InnerRaceFault_vload_1.mat")
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import scipy.io

from cascadeprune.tasks.bearing.recording import DataError, Recording

LABELS = {"InnerRaceFault": "inner_race", "OuterRaceFault": "outer_race", "baseline": "normal"}


def read_mfpt(path: str | Path) -> Recording:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    m = re.match(r"(InnerRaceFault|OuterRaceFault|baseline)", path.name)
    if not m:
        raise DataError(f"{path}: not an MFPT file name (InnerRaceFault_*, OuterRaceFault_*, baseline_*)")
    try:
        mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as e:
        raise DataError(f"{path}: not a readable MATLAB file ({e})") from None
    if "bearing" not in mat:
        raise DataError(f"{path}: no variable 'bearing'")
    b = mat["bearing"]
    for name in ("gs", "sr"):
        if not hasattr(b, name):
            raise DataError(f"{path}: struct 'bearing' has no field '{name}'")
    fs = float(np.asarray(b.sr).reshape(-1)[0])
    if not fs > 0:
        raise DataError(f"{path}: unknown sampling rate {fs}")
    return Recording(
        file=f"mfpt/{path.name}",
        signal=np.asarray(b.gs, dtype=np.float64).reshape(-1),
        fs=fs,
        label=LABELS[m.group(1)],
        load=float(np.asarray(getattr(b, "load", np.nan)).reshape(-1)[0]),
        meta={"shaft_hz": float(np.asarray(getattr(b, "rate", np.nan)).reshape(-1)[0]),
              **{k: float(mat[k]) for k in ("BPFI", "BPFO", "BSF", "FTF") if k in mat}},
    )
