"""Signal quality before diagnosis: thresholds from training statistics; flat, clipped and stuck windows
flagged; every real CWRU test window passes (real data from ../shared/data: skipped with a message when
absent, a failure under CI=true)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from cascadeprune.deploy.quality import (DEFAULT_THRESHOLDS, check_windows, resolve_thresholds,
                                         signal_quality_record)
from cascadeprune.errors import CascadePruneError

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def faulty(x: np.ndarray) -> dict[str, np.ndarray]:
    """Flat, clipped and stuck versions of one real window (same length)."""
    n = len(x)
    rail = float(np.percentile(np.abs(x), 90))  # a converter range that a tenth of the samples exceed
    stuck = x.copy()
    # the sensor holds one of its values (the median one, not an extreme) for a sixth of the window
    stuck[n // 4: n // 4 + n // 6] = np.sort(x)[n // 2]
    return {"flat": np.zeros(n, np.float32), "flat_offset": np.full(n, 0.37, np.float32),
            "clipped": np.clip(x, -rail, rail), "stuck": stuck}


def real_cwru(window: int):
    from cascadeprune.tasks.bearing.protocols import WindowConfig, build_dataset

    if not (DATA / "cwru" / "MANIFEST.csv").is_file():
        msg = f"real CWRU data not found at {DATA} (see docs: data)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return build_dataset("cwru-4class-crossload", DATA, WindowConfig(window=window, stride=window // 2))


@pytest.mark.parametrize("window", [2048, 1024, 512])
def test_every_real_cwru_test_window_passes_and_faults_are_flagged(window):
    """Thresholds from the training windows (as export computes them); the 3 hp test windows and the
    validation windows, never seen in training, all pass; faulty copies of real windows do not."""
    ds = real_cwru(window)
    rec = signal_quality_record(ds.x["train"], "cwru-4class-crossload")
    thr = rec["thresholds"]
    assert rec["statistics"]["windows"] == len(ds.x["train"]) and rec["statistics"]["window"] == window
    for split in ("train", "val", "test"):
        faults = check_windows(ds.x[split], thr)
        bad = [f for f in faults if f is not None]
        assert not bad, f"{len(bad)} of {len(faults)} real {split} windows flagged, first: {bad[0]}"
    flagged = {k: [] for k in ("flat", "flat_offset", "clipped", "stuck")}
    for x in ds.x["test"][:: max(1, len(ds.x["test"]) // 40)]:  # ~40 windows across every class
        for name, w in faulty(x).items():
            f = check_windows(w[None], thr)[0]
            flagged[name].append(f and f["kind"])
    assert set(flagged["flat"]) == {"flat"} and set(flagged["flat_offset"]) == {"flat"}
    assert set(flagged["clipped"]) == {"clipped"} and set(flagged["stuck"]) == {"stuck"}, flagged


def test_2048_zeros_are_flat_with_the_statistic_and_threshold():
    f = check_windows(np.zeros((1, 2048), np.float32), DEFAULT_THRESHOLDS)[0]
    assert f["kind"] == "flat" and f["statistic"] == "std" and f["value"] == 0.0
    assert f["threshold"] == DEFAULT_THRESHOLDS["min_std"] and "flat line" in f["message"]


def test_defaults_without_training_statistics_flag_gross_faults_only():
    """An artifact exported before signal_quality existed: the defaults still catch a dead, railed or
    stuck sensor, and pass a real window (here: the synthetic protocol's, which needs no files)."""
    from cascadeprune.tasks.bearing.protocols import WindowConfig, build_dataset

    x = build_dataset("synthetic", windows=WindowConfig(window=1024, stride=1024)).x["test"]
    thr, source = resolve_thresholds(None)
    assert source.startswith("defaults")
    assert all(f is None for f in check_windows(x, thr))
    clipped = np.clip(x[0], -0.2 * np.abs(x[0]).max(), 0.2 * np.abs(x[0]).max())
    stuck = x[0].copy()
    stuck[100:700] = stuck[100]
    kinds = [f["kind"] for f in check_windows(np.stack([np.zeros(1024, np.float32), clipped, stuck]), thr)]
    assert kinds == ["flat", "clipped", "stuck"]


def test_overrides_and_bad_thresholds():
    rec = {"thresholds": {"min_std": 0.01, "max_rail_fraction": 0.03, "max_repeat_fraction": 0.05,
                          "rail_tolerance": 0.001}}
    thr, source = resolve_thresholds(rec, {"min_std": 0.5, "max_repeat_fraction": None})
    assert thr["min_std"] == 0.5 and thr["max_repeat_fraction"] == 0.05 and "min_std=0.5" in source
    for bad, words in [({"min_std": float("nan")}, "--min-std must be a finite number"),
                       ({"max_rail_fraction": -1.0}, "--max-rail-fraction must be"),
                       ({"max_repeat_fraction": 2.0}, "--max-repeat-fraction is a share"),
                       ({"nonsense": 1.0}, "unknown signal-quality threshold")]:
        with pytest.raises(CascadePruneError, match=words):
            resolve_thresholds(rec, bad)
    with pytest.raises(CascadePruneError, match="signal_quality.thresholds.min_std"):
        resolve_thresholds({"thresholds": {"min_std": "low"}})


def test_export_stores_statistics_and_old_exports_fall_back(tmp_path_factory, capsys):
    """deploy.json carries the training statistics and thresholds; the service reads them, and an
    artifact without them is served with the documented defaults and a warning line."""
    from cascadeprune.serve.service import Service
    from serve_support import WINDOW, tiny_export

    _, export = tiny_export(tmp_path_factory.getbasetemp() / "serve-artifact")
    deploy = json.loads((export / "deploy.json").read_text())
    sq = deploy["signal_quality"]
    assert sq["statistics"]["protocol"] == "synthetic" and sq["statistics"]["window"] == WINDOW
    assert sq["statistics"]["windows"] > 1000 and sq["thresholds"]["min_std"] > 0
    svc = Service(str(export), http="127.0.0.1:0")
    assert svc.signal_check == {"thresholds": sq["thresholds"], "source": "deploy.json"}
    svc.engine.close()
    old = tmp_path_factory.mktemp("old-export") / "export"
    shutil.copytree(export, old)
    del deploy["signal_quality"]
    (old / "deploy.json").write_text(json.dumps(deploy))
    svc = Service(str(old), http="127.0.0.1:0", thresholds={"max_rail_fraction": 0.2})
    assert svc.signal_check["thresholds"] == {**DEFAULT_THRESHOLDS, "max_rail_fraction": 0.2}
    assert svc.signal_check["source"].startswith("defaults")
    svc.engine.close()
