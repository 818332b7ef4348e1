"""Multi-domain calibration sets (from *Iterative Structured Pruning for LLMs with Multi-Domain
Calibration*): importance is estimated on windows mixed from several domains in given
proportions, drawn from TRAINING data only, so no test sample can steer what gets pruned.

A domain is a protocol name with optional qualifiers after ``@``:

- ``cwru-4class-crossload`` — all training windows of the protocol;
- ``cwru-4class-crossload@load=1`` — only windows recorded at load 1;
- ``synthetic@snr=0`` — training windows with white noise at 0 dB SNR added.

Labels are mapped onto the target class list by name; windows whose class the target does not
have (e.g. MFPT's ``inner_race`` for a CWRU model) get label -1 (usable by label-free criteria).

Example::

    calib = build_calibration({"cwru-4class-crossload": 0.6, "synthetic": 0.2,
                               "cwru-4class-crossload@snr=0": 0.2}, n=256,
                              target_classes=("normal", "inner", "outer", "ball"))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cascadeprune.tasks.bearing.protocols import WindowConfig, add_noise, build_dataset
from cascadeprune.tasks.bearing.recording import DataError


@dataclass
class CalibrationSet:
    x: np.ndarray  # [n, window] float32
    y: np.ndarray  # [n] int64, -1 where the target has no such class
    domain: np.ndarray  # [n] index into `domains`
    domains: tuple[str, ...]


def parse_domain(spec: str) -> tuple[str, dict[str, float]]:
    name, _, rest = spec.partition("@")
    quals = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        if key not in ("load", "snr") or not value:
            raise DataError(f"calibration domain {spec!r}: qualifiers are load=<number> and snr=<dB>")
        quals[key] = float(value)
    return name, quals


def build_calibration(mix: dict[str, float], n: int, target_classes, seed: int = 0,
                      data_dir: str | Path | None = None, windows: WindowConfig | None = None) -> CalibrationSet:
    """Draw ``n`` training windows from the domains in ``mix`` (weights need not sum to 1)."""
    if not mix or any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
        raise DataError(f"calibration mix {mix!r}: give at least one domain with a positive weight")
    rng = np.random.default_rng(seed)
    weights = np.array(list(mix.values()), dtype=np.float64)
    counts = np.floor(weights / weights.sum() * n).astype(int)
    counts[np.argmax(weights)] += n - counts.sum()  # exact total
    xs, ys, ds_idx = [], [], []
    cache: dict[str, object] = {}
    for i, (spec, k) in enumerate(zip(mix, counts)):
        if k == 0:
            continue
        name, quals = parse_domain(spec)
        if name not in cache:
            cache[name] = build_dataset(name, data_dir, windows, splits=("train",))
        ds = cache[name]
        pool = np.arange(len(ds.x["train"]))
        if "load" in quals:
            pool = pool[ds.load["train"] == quals["load"]]
        if len(pool) == 0:
            raise DataError(f"calibration domain {spec!r}: no training windows match")
        pick = rng.choice(pool, size=k, replace=len(pool) < k)
        x = ds.x["train"][pick]
        if "snr" in quals:
            x = add_noise(x, quals["snr"], seed=int(rng.integers(2**31)))
        names = [ds.classes[c] for c in ds.y["train"][pick]]
        xs.append(x)
        ys.append(np.array([target_classes.index(c) if c in target_classes else -1 for c in names], dtype=np.int64))
        ds_idx.append(np.full(k, i, dtype=np.int64))
    order = rng.permutation(n)
    return CalibrationSet(np.concatenate(xs)[order], np.concatenate(ys)[order], np.concatenate(ds_idx)[order],
                          tuple(mix))
