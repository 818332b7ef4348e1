"""Named, leakage-free evaluation protocols.

A protocol turns records into **segments**: ``(split, file, class, load, start, end)`` where
``start``/``end`` are sample indices into the SOURCE record (end exclusive). Windows are cut only
inside a segment, and segments of one record never overlap, so no vibration sample is in both a
training/validation window and a test window. Validation is carved from the training side only
(the last part of each training segment, in time).

Protocols (all resampled to 12 kHz with an anti-aliasing filter):

- ``cwru-4class-crossload`` (the paper's): normal / inner / outer / ball (all fault sizes); train
  on 0, 1, 2 hp, test on 3 hp. With only 97.mat for the normal class (0 hp, the shared subset),
  normal is split by time: the first 70 % for training, the last 30 % for test. This is the one
  place where test and training data share a load; with 98-100.mat present their real loads
  are used instead.
- ``cwru-10class-crossload``: normal + {IR, B, OR} x {0.007, 0.014, 0.021 in}; loads as above.
- ``cwru-10class-timesplit``: the same 10 classes, all loads, each record split by time (70/30).
- ``mfpt-2class-crossload``: inner vs outer race (MFPT, no healthy class); train on loads
  0-200 lbs (vload 1-5), test on 250-300 lbs (vload 6-7).
- ``synthetic``: the physics simulator (:mod:`.simulator`), 4 classes, 10 s per record; train on
  0-2 hp, test on 3 hp. Needs no files.

Harder protocols (where a model's capacity or pretraining might matter):

- ``cwru-4class-crossload-snr0`` / ``-snr-5``: the paper's protocol with white noise at 0 / -5 dB
  SNR added to every test window (fixed noise seed 0; training and validation stay clean).
- ``cwru-to-mfpt-2class``: cross-dataset transfer on the fault types both datasets share. Train
  and validate on CWRU (12 kHz drive end, all loads and fault sizes; ``IR*`` -> ``inner``,
  ``OR*`` -> ``outer``; normal and ball files unused), test on every MFPT ``*RaceFault_vload_*``
  record resampled from 48,828 Hz to 12 kHz (``InnerRaceFault`` -> ``inner``, ``OuterRaceFault``
  -> ``outer``). Different test rig, sensor, shaft speed (CWRU ~29 Hz, MFPT 25 Hz) and load.
- ``cwru-to-mfpt-2class-5shot``: the same, plus few-shot adaptation data: the first 5 training
  windows' worth of samples of ``*_vload_1`` of each MFPT class move into training (and are cut
  from that record's test part), so the model sees 5 windows per class of the new rig. Joint
  training: the 10 windows sit among ~4,800 CWRU ones and are not up-weighted.
- ``cwru-to-mfpt-2class-5shot-adapt``: few-shot ADAPTATION. Train on those same 10 MFPT windows
  only (5 per class), starting from a ``cwru-to-mfpt-2class`` model (``cascadeprune train --init
  DIR``); test identical to ``-5shot``'s. Validation: ``cwru-to-mfpt-2class``'s CWRU validation
  windows (the same samples). No MFPT window is left for a target-domain validation without
  shrinking the shots or changing the test, so this validation measures what adaptation keeps of
  the source task, not target accuracy: adapt for a fixed budget and keep the last weights
  (``train --keep last``) rather than select on it.

Example::

    ds = build_dataset("cwru-4class-crossload", data_dir="../shared/data")
    ds.x["train"].shape, ds.classes
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from cascadeprune.tasks.bearing.recording import DataError, Recording, data_dir as default_data_dir, resample

FS = 12000.0  # working sampling rate of every protocol
TEST_FRACTION = 0.3  # time-split protocols: the last 30 % of a record is test
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Source:
    """A record a protocol uses, and the part of it (fractions of its length) per split."""

    load: Callable[[], Recording]
    label: str
    # (split, start fraction, end fraction); or a function of (source samples, source rate, window config)
    # returning them, for parts sized in windows (few-shot)
    parts: tuple[tuple[str, float, float], ...] | Callable[[int, float, "WindowConfig"], tuple]


@dataclass(frozen=True)
class Segment:
    split: str
    file: str
    label: str
    load: float
    start: int  # source-record samples, end exclusive
    end: int
    n_windows: int

    def to_dict(self) -> dict:
        return {"split": self.split, "file": self.file, "class": self.label, "load_hp": self.load,
                "start": self.start, "end": self.end, "n_windows": self.n_windows}


@dataclass(frozen=True)
class Protocol:
    name: str
    classes: tuple[str, ...]
    sources: Callable[[Path], list[Source]]
    description: str
    test_snr_db: float | None = None  # noise added to every test window (seed 0) unless the caller asks otherwise
    mapping: dict[str, str] = field(default_factory=dict)  # source label -> class, printed by `data describe`


@dataclass
class WindowConfig:
    window: int = 1024  # samples at 12 kHz
    stride: int = 512  # training stride
    eval_stride: int | None = None  # validation/test stride; default: the window (no overlap)
    val_fraction: float = 0.15  # of each training segment, taken from its end

    def stride_for(self, split: str) -> int:
        return self.stride if split == "train" else (self.eval_stride or self.window)


@dataclass
class Dataset:
    """Windows per split, with their labels and provenance."""

    protocol: str
    classes: tuple[str, ...]
    x: dict[str, np.ndarray]  # split -> [n, window] float32
    y: dict[str, np.ndarray]  # split -> [n] int64
    load: dict[str, np.ndarray]  # split -> [n] load of each window's record
    segments: list[Segment]
    windows: WindowConfig = field(default_factory=WindowConfig)
    snr_db: float | None = None


def _train_val(start: float, end: float, val: float) -> tuple[tuple[str, float, float], ...]:
    cut = end - (end - start) * val
    return (("train", start, cut), ("val", cut, end))


def _cwru_sources(root: Path, label_of: Callable, train_loads, test_loads, time_split: bool, val: float):
    from cascadeprune.tasks.bearing.cwru import catalogue, read_cwru

    cwru = root / "cwru"
    if not cwru.is_dir():
        raise DataError(f"{cwru}: no CWRU folder; get the files with `cascadeprune data fetch cwru --to {root}`")
    files = [f for f in catalogue().values() if f.fs == 12000 or f.label == "normal"]  # 12 kHz set + baselines
    present = [f for f in files if (cwru / f.path).is_file()]
    normal_loads = {f.load_hp for f in present if f.label == "normal"}
    out = []
    for f in sorted(present, key=lambda f: f.number):
        reader = (lambda p: lambda: read_cwru(p))(cwru / f.path)
        if time_split or (f.label == "normal" and normal_loads == {0}):
            parts = _train_val(0.0, 1 - TEST_FRACTION, val) + (("test", 1 - TEST_FRACTION, 1.0),)
        elif f.load_hp in test_loads:
            parts = (("test", 0.0, 1.0),)
        elif f.load_hp in train_loads:
            parts = _train_val(0.0, 1.0, val)
        else:
            continue
        out.append(Source(reader, label_of(f), parts))
    for split in ("train", "test"):
        have = {s.label for s in out if any(p[0] == split for p in s.parts)}
        missing = sorted({label_of(f) for f in files} - have)
        if missing:
            raise DataError(f"{cwru}: no {split} files for class(es) {', '.join(missing)}; "
                            f"run `cascadeprune data fetch cwru --to {root}`")
    return out


def _mfpt_sources(root: Path, val: float):
    from cascadeprune.tasks.bearing.mfpt import read_mfpt

    folder = root / "mfpt"
    files = sorted(folder.glob("*RaceFault_vload_*.mat"))
    if not files:
        raise DataError(f"{folder}: no MFPT files (InnerRaceFault_vload_*.mat, OuterRaceFault_vload_*.mat)")
    out = []
    for p in files:
        idx = int(p.stem.rsplit("_", 1)[1])
        label = "inner_race" if p.name.startswith("Inner") else "outer_race"
        parts = (("test", 0.0, 1.0),) if idx >= 6 else _train_val(0.0, 1.0, val)
        out.append(Source((lambda q: lambda: read_mfpt(q))(p), label, parts))
    return out


def _transfer_sources(root: Path, val: float, shots: int = 0, adapt: bool = False):
    """CWRU inner/outer (all loads, all sizes) for training; MFPT inner/outer for test; with ``shots``,
    the first ``shots`` training windows of each MFPT class's vload_1 record move into training.
    With ``adapt``, CWRU keeps only its validation part (the same samples as without it), so the
    shots are the whole training split."""
    from cascadeprune.tasks.bearing.cwru import catalogue, read_cwru
    from cascadeprune.tasks.bearing.mfpt import read_mfpt

    cwru, folder = root / "cwru", root / "mfpt"
    if not cwru.is_dir():
        raise DataError(f"{cwru}: no CWRU folder; get the files with `cascadeprune data fetch cwru --to {root}`")
    out = []
    for f in sorted(catalogue().values(), key=lambda f: f.number):
        if f.fs != 12000 or f.location not in ("inner", "outer") or not (cwru / f.path).is_file():
            continue
        parts = _train_val(0.0, 1.0, val)
        if adapt:
            parts = tuple(p for p in parts if p[0] == "val")
        out.append(Source((lambda p: lambda: read_cwru(p))(cwru / f.path), f.location, parts))
    files = sorted(folder.glob("*RaceFault_vload_*.mat"))
    for label in ("inner", "outer"):
        if not any(s.label == label for s in out):
            raise DataError(f"{cwru}: no 12 kHz {label}-race files; run `cascadeprune data fetch cwru --to {root}`")
        if not any(p.name.lower().startswith(label) for p in files):
            raise DataError(f"{folder}: no MFPT {label}-race files ({label.capitalize()}RaceFault_vload_*.mat)")
    for p in files:
        label = "inner" if p.name.startswith("Inner") else "outer"
        parts: tuple | Callable = (("test", 0.0, 1.0),)
        if shots and p.stem.endswith("_vload_1"):
            parts = (lambda n, fs, w: _shot_parts(n, fs, w, shots))
        out.append(Source((lambda q: lambda: read_mfpt(q))(p), label, parts))
    return out


def _shot_parts(n: int, fs: float, w: "WindowConfig", shots: int) -> tuple:
    """The first ``shots`` training windows of a record (at the training stride, after resampling to
    12 kHz, with half a stride to spare) for training, the rest for test."""
    need = ((shots - 1) * w.stride + w.window + w.stride // 2) * fs / FS
    cut = min(1.0, need / n)
    if cut >= 0.5:
        raise DataError(f"{shots} shots of {w.window} samples take {cut:.0%} of a {n}-sample record; use fewer shots")
    return (("train", 0.0, cut), ("test", cut, 1.0))


def _synthetic_sources(val: float, seconds: float = 10.0):
    from cascadeprune.tasks.bearing.simulator import CLASSES, simulate

    out = []
    for label in CLASSES:
        for load in (0, 1, 2, 3):
            parts = (("test", 0.0, 1.0),) if load == 3 else _train_val(0.0, 1.0, val)
            out.append(Source((lambda l, h: lambda: simulate(l, h, seconds=seconds, fs=FS, seed=0))(label, load),
                              label, parts))
    return out


PROTOCOLS: dict[str, Protocol] = {}


def register_protocol(p: Protocol) -> None:
    if p.name in PROTOCOLS:
        raise ValueError(f"protocol {p.name!r} is already registered")
    PROTOCOLS[p.name] = p


register_protocol(Protocol(
    "cwru-4class-crossload", ("normal", "inner", "outer", "ball"),
    lambda root, val=0.15: _cwru_sources(root, lambda f: f.location, {0, 1, 2}, {3}, False, val),
    "CWRU 12 kHz drive end; normal/inner/outer/ball; train 0-2 hp, test 3 hp (paper protocol)"))
_TEN = ("normal", "IR007", "IR014", "IR021", "B007", "B014", "B021", "OR007", "OR014", "OR021")
register_protocol(Protocol(
    "cwru-10class-crossload", _TEN,
    lambda root, val=0.15: _cwru_sources(root, lambda f: f.label, {0, 1, 2}, {3}, False, val),
    "CWRU 12 kHz drive end; 10 classes (location x size); train 0-2 hp, test 3 hp"))
register_protocol(Protocol(
    "cwru-10class-timesplit", _TEN,
    lambda root, val=0.15: _cwru_sources(root, lambda f: f.label, {0, 1, 2, 3}, set(), True, val),
    "CWRU 12 kHz drive end; 10 classes; all loads; each record split by time 70/30"))
register_protocol(Protocol(
    "mfpt-2class-crossload", ("inner_race", "outer_race"),
    lambda root, val=0.15: _mfpt_sources(root, val),
    "MFPT inner vs outer race; train 0-200 lbs, test 250-300 lbs"))
for _db, _suffix in ((0.0, "snr0"), (-5.0, "snr-5")):
    register_protocol(Protocol(
        f"cwru-4class-crossload-{_suffix}", ("normal", "inner", "outer", "ball"),
        lambda root, val=0.15: _cwru_sources(root, lambda f: f.location, {0, 1, 2}, {3}, False, val),
        f"cwru-4class-crossload with white noise at {_db:g} dB SNR on every test window (seed 0); training clean",
        test_snr_db=_db))
_TRANSFER_MAP = {"CWRU IR007/IR014/IR021 (12 kHz DE)": "inner", "CWRU OR007/OR014/OR021 (12 kHz DE)": "outer",
                 "MFPT InnerRaceFault_vload_*": "inner", "MFPT OuterRaceFault_vload_*": "outer"}
register_protocol(Protocol(
    "cwru-to-mfpt-2class", ("inner", "outer"),
    lambda root, val=0.15: _transfer_sources(root, val),
    "cross-dataset: train on CWRU inner/outer race (all loads), test on MFPT inner/outer race (resampled to 12 kHz)",
    mapping=_TRANSFER_MAP))
register_protocol(Protocol(
    "cwru-to-mfpt-2class-5shot", ("inner", "outer"),
    lambda root, val=0.15: _transfer_sources(root, val, shots=5),
    "cwru-to-mfpt-2class plus 5 training windows per class from MFPT vload_1 (cut from its test part)",
    mapping=_TRANSFER_MAP))
register_protocol(Protocol(
    "cwru-to-mfpt-2class-5shot-adapt", ("inner", "outer"),
    lambda root, val=0.15: _transfer_sources(root, val, shots=5, adapt=True),
    "few-shot adaptation: train only on cwru-to-mfpt-2class-5shot's 10 MFPT vload_1 windows (5 per class; start "
    "from a cwru-to-mfpt-2class model with `train --init`); validate on cwru-to-mfpt-2class's CWRU validation "
    "windows (source retention: adapt for a fixed budget, `--keep last`); test identical to -5shot's",
    mapping={"CWRU IR007/IR014/IR021 (12 kHz DE), validation only": "inner",
             "CWRU OR007/OR014/OR021 (12 kHz DE), validation only": "outer",
             "MFPT InnerRaceFault_vload_1 (5 training windows), InnerRaceFault_vload_* (test)": "inner",
             "MFPT OuterRaceFault_vload_1 (5 training windows), OuterRaceFault_vload_* (test)": "outer"}))
register_protocol(Protocol(
    "synthetic", ("normal", "inner", "outer", "ball"),
    lambda root, val=0.15: _synthetic_sources(val),
    "physics simulator (embedded, no files); train 0-2 hp, test 3 hp"))


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise DataError(f"unknown protocol {name!r}; choose one of {', '.join(PROTOCOLS)}") from None


def _n_windows(n: int, window: int, stride: int) -> int:
    return 0 if n < window else (n - window) // stride + 1


def _cut(x: np.ndarray, window: int, stride: int) -> np.ndarray:
    n = _n_windows(len(x), window, stride)
    idx = np.arange(window)[None, :] + stride * np.arange(n)[:, None]
    return x[idx]


def add_noise(x: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """White Gaussian noise at ``snr_db`` relative to each window's own power."""
    rng = np.random.default_rng(seed)
    power = np.mean(x.astype(np.float64) ** 2, axis=1, keepdims=True)
    noise = rng.standard_normal(x.shape) * np.sqrt(power / 10 ** (snr_db / 10))
    return (x + noise).astype(np.float32)


def build_dataset(name: str, data_dir: str | Path | None = None, windows: WindowConfig | None = None,
                  snr_db: float | None = None, noise_seed: int = 0, splits=SPLITS) -> Dataset:
    """Read, resample, split and window a protocol. ``snr_db`` adds noise to the TEST windows only."""
    windows = windows or WindowConfig()
    proto = get_protocol(name)
    root = default_data_dir(data_dir)
    xs = {s: [] for s in SPLITS}
    ys = {s: [] for s in SPLITS}
    loads = {s: [] for s in SPLITS}
    segments = []
    for src in proto.sources(root, windows.val_fraction):
        rec = src.load()
        n = len(rec.signal)
        parts = src.parts(n, rec.fs, windows) if callable(src.parts) else src.parts
        for split, a, b in parts:
            start, end = int(round(a * n)), int(round(b * n))
            piece = resample(rec.signal[start:end], rec.fs, FS, rec.file)
            stride = windows.stride_for(split)
            count = _n_windows(len(piece), windows.window, stride)
            if count == 0:
                raise DataError(
                    f"{rec.file}: the {split} part ({end - start} samples, {len(piece)} at 12 kHz) is shorter than "
                    f"one window of {windows.window} samples"
                )
            # the slice is resampled on its own, so its windows depend on source samples [start, end) only
            segments.append(Segment(split, rec.file, src.label, rec.load, start, end, count))
            if split in splits:
                xs[split].append(_cut(piece.astype(np.float32), windows.window, stride))
                ys[split].append(np.full(count, proto.classes.index(src.label), dtype=np.int64))
                loads[split].append(np.full(count, rec.load, dtype=np.float64))
    cat = lambda d, dt, shape: {  # noqa: E731
        s: (np.concatenate(d[s]) if d[s] else np.zeros(shape, dtype=dt)) for s in SPLITS}
    if snr_db is None and proto.test_snr_db is not None:
        snr_db, noise_seed = proto.test_snr_db, 0
    ds = Dataset(name, proto.classes, cat(xs, np.float32, (0, windows.window)), cat(ys, np.int64, (0,)),
                 cat(loads, np.float64, (0,)), segments, windows, snr_db)
    if snr_db is not None and len(ds.x["test"]):
        ds.x["test"] = add_noise(ds.x["test"], snr_db, noise_seed)
    return ds


def holdout_load_view(ds: Dataset, load: float) -> Dataset:
    """The same windows re-split for cross-load validation: train on the training windows of the
    other loads, validate on every training and validation window of ``load``; test is unchanged."""
    keep = ds.load["train"] != load
    held_val = ds.load["val"] == load
    if keep.all() and not held_val.any():
        raise DataError(f"{ds.protocol}: load {load:g} is not a training load "
                        f"(training loads: {', '.join(f'{v:g}' for v in sorted(set(ds.load['train'])))})")
    if not keep.any():
        raise DataError(f"{ds.protocol}: holding out load {load:g} leaves no training windows")
    val = {k: np.concatenate([getattr(ds, k)["train"][~keep], getattr(ds, k)["val"][held_val]])
           for k in ("x", "y", "load")}
    split = {k: {**getattr(ds, k), "train": getattr(ds, k)["train"][keep], "val": val[k]} for k in ("x", "y", "load")}
    return replace(ds, **split)


def describe(name: str, data_dir: str | Path | None = None, windows: WindowConfig | None = None) -> dict:
    """The audit record: every segment with its source sample range and window count."""
    ds = build_dataset(name, data_dir, windows, splits=())
    proto = get_protocol(name)
    return {"protocol": name, "classes": list(ds.classes), "fs": FS, "description": proto.description,
            "test_snr_db": proto.test_snr_db, "class_mapping": dict(proto.mapping),
            "window": ds.windows.window, "stride": ds.windows.stride,
            "eval_stride": ds.windows.stride_for("test"), "segments": [s.to_dict() for s in ds.segments]}
