"""CWRU Bearing Data Center files: the catalogue and the ``.mat`` reader.

The catalogue (``cwru_files.csv``, metadata and checksums only) maps each official file number to
class, fault size, load, speed and sampling rate. The reader picks the drive-end variable by the
file's number and handles the known quirks:

- ``174.mat`` stores ``X173_DE_time`` (the number of its neighbour);
- ``99.mat`` stores two sets (``X098_*`` and ``X099_*``): the file's own number wins;
- the normal baseline ``97.mat`` (and 98-100) was sampled at 48 kHz, not 12 kHz.

Example::

    rec = read_cwru(data_dir() / "cwru" / "105.mat")     # IR007 at 0 hp, 12 kHz
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy.io

from cascadeprune.tasks.bearing.recording import DataError, Recording

CATALOGUE = Path(__file__).with_name("cwru_files.csv")
OFFICIAL_URL = "https://engineering.case.edu/sites/default/files/{number}.mat"
VARIABLE_ALIASES = {174: (173,)}  # file number -> other numbers its variables may carry


@dataclass(frozen=True)
class CWRUFile:
    number: int
    path: str  # relative to the cwru/ folder
    label: str  # normal, IR007, B014, OR021, ...
    fault_diameter_in: float
    load_hp: int
    rpm: int
    fs: int
    n_samples: int | None
    sha256: str
    md5: str

    @property
    def location(self) -> str:
        """normal / inner / ball / outer: the 4-class label."""
        return {"IR": "inner", "B": "ball", "OR": "outer"}.get(re.sub(r"\d+$", "", self.label), "normal")


@lru_cache(maxsize=1)
def catalogue() -> dict[int, CWRUFile]:
    lines = [l for l in CATALOGUE.read_text().splitlines() if not l.startswith("#")]
    out = {}
    for r in csv.DictReader(lines):
        f = CWRUFile(int(r["number"]), r["path"], r["class"], float(r["fault_diameter_in"]), int(r["load_hp"]),
                     int(r["rpm"]), int(r["sampling_rate_hz"]), int(r["n_samples_de"]) if r["n_samples_de"] else None,
                     r["sha256"], r["md5"])
        out[f.number] = f
    return out


def file_number(path: Path) -> int:
    m = re.fullmatch(r"(\d+)\.mat", path.name)
    if not m:
        raise DataError(f"{path}: CWRU files are named <number>.mat")
    return int(m.group(1))


def _load_mat(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return scipy.io.loadmat(path)
    except Exception as e:  # scipy raises several kinds for corrupt files
        raise DataError(f"{path}: not a readable MATLAB file ({e})") from None


def read_cwru(path: str | Path, channel: str = "DE", fs: float | None = None) -> Recording:
    """Read one channel (DE, FE or BA) of a CWRU file at its native rate.

    ``fs`` overrides the catalogue's sampling rate (needed for files not in the catalogue)."""
    path = Path(path)
    number = file_number(path)
    info = catalogue().get(number)
    rate = fs or (info.fs if info else None)
    if rate is None:
        raise DataError(f"{path}: file {number} is not in the CWRU catalogue; its sampling rate is unknown (pass fs)")
    mat = _load_mat(path)
    names = [f"X{n:03d}_{channel}_time" for n in (number, *VARIABLE_ALIASES.get(number, ()))]
    for name in names:
        if name in mat:
            signal = np.asarray(mat[name], dtype=np.float64).reshape(-1)
            break
    else:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise DataError(f"{path}: no variable {names[0]} (found: {', '.join(found) or 'none'})")
    rpm_var = next((mat[k] for k in (f"X{n:03d}RPM" for n in (number, *VARIABLE_ALIASES.get(number, ()))) if k in mat),
                   None)
    rpm = float(np.asarray(rpm_var).reshape(-1)[0]) if rpm_var is not None else (info.rpm if info else float("nan"))
    return Recording(
        file=f"cwru/{info.path if info else path.name}",
        signal=signal,
        fs=float(rate),
        label=info.label if info else "unknown",
        load=float(info.load_hp) if info else float("nan"),
        meta={"number": number, "rpm": rpm, "channel": channel,
              "location": info.location if info else "unknown",
              "fault_diameter_in": info.fault_diameter_in if info else None},
    )
