"""Deployment targets for `compress --method auto` (targets.py: the search; deploy/targets.py: the measuring):
an impossible latency or memory budget exits
2 with one line naming the smallest value reached and at which ratio, before any search; a loose budget returns a
model that meets it; the search finds the smallest ratio that meets a budget and lists every measured candidate;
bad values and misplaced flags exit 2 naming the flag. Tiny Llama classifier on synthetic vibration; the real runs
use the torch runtime (no export) so the file stays within seconds."""

from __future__ import annotations

import json

import pytest
import torch

from cascadeprune import load_model, save_model
from cascadeprune.cli import main
from cascadeprune import targets
from cascadeprune.deploy import targets as measuring
from cascadeprune.errors import CascadePruneError
from cascadeprune.storage.load import load_backbone
from cascadeprune.tasks.bearing.classifier import FrontEndConfig, VibrationClassifier

QUICK = ["--search-budget", "4", "--recovery-steps", "0", "--set", "auto.sia=skip", "--set", "calibration.n=8",
         "--set", "calibration.batch_size=4", "--runtime", "torch"]


@pytest.fixture(scope="module")
def clf_dir(tmp_path_factory):
    torch.manual_seed(0)
    clf = VibrationClassifier(load_backbone("tiny-llama"), ("normal", "inner", "outer", "ball"),
                              FrontEndConfig(512, 16), meta={"protocol": "synthetic"})
    path = tmp_path_factory.mktemp("targets") / "clf"
    save_model(clf, path)
    return path


def test_an_impossible_latency_exits_2_naming_the_smallest_latency_reached(clf_dir, tmp_path, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr("cascadeprune.methods.cascade.run_compression", lambda *a, **k: calls.append(a))
    out = tmp_path / "o"
    assert main(["compress", str(clf_dir), "--task", "synthetic", "--latency-ms", "1e-6", "--out", str(out),
                 *QUICK]) == 2
    err = capsys.readouterr().err
    last = err.splitlines()[-1]  # progress lines before it ("targets: measuring ..."), the error in one line
    assert last.startswith("cascadeprune: error: ") and "Traceback" not in err and err.count("error") == 1
    err = last
    assert "--latency-ms 1e-06: not reachable: the smallest p50 latency reached is " in err
    ms = float(err.split("latency reached is ")[1].split(" ms")[0])
    ratio = float(err.split(" ms, at ")[1].split("x")[0])
    assert ms > 1e-6 and ratio > 5  # the most compressed plan's measured latency, and its ratio
    assert not calls  # refused before any search or training
    assert not out.exists()  # nothing left behind


def test_a_loose_budget_returns_a_model_that_meets_it(clf_dir, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["compress", str(clf_dir), "--task", "synthetic", "--latency-ms", "1e5", "--memory-mb", "1e6",
                 "--out", str(out), *QUICK]) == 0
    report = json.loads((out / "report.json").read_text())
    t = report["targets"]
    chosen = [c for c in t["candidates"] if c.get("chosen")]
    assert len(chosen) == 1 and chosen[0]["meets"] and chosen[0]["p50_ms"] <= 1e5 and chosen[0]["peak_rss_mb"] <= 1e6
    kinds = [c["kind"] for c in t["candidates"]]
    assert "dense" in kinds and "most compressed plan, no recovery" in kinds
    # galloping from the lowest ratio: a loose budget costs one auto run, at the lowest candidate ratio
    assert [c["ratio"] for c in t["candidates"] if c["kind"] == "auto"] == [1.25] == [t["chosen_ratio"]]
    assert abs(report["ratio_achieved"] / 1.25 - 1) <= 0.01
    assert load_model(out / "model") is not None and (out / "plan.json").is_file()
    assert not (out / "targets").exists() and "Deployment target" in (out / "report.md").read_text()
    assert "chose 1.25x" in capsys.readouterr().out


def test_the_search_finds_the_smallest_ratio_that_meets_the_budget_and_lists_every_candidate(clf_dir, tmp_path,
                                                                                            monkeypatch):
    """The search logic alone: auto runs and measurements faked (latency 1 / ratio, validation falling with it)."""
    from cascadeprune.methods.config import build_config

    measured, runs = [], []

    def fake_measure(model_dir, spec, protocol=None, data_dir=None):
        name = model_dir.parent.name
        ms = {"dense": 1.0, "max": 0.01}.get(name) or 1.0 / float(name[1:])
        measured.append(name)
        (model_dir.parent / "export").mkdir()  # what the onnx runtime's measurement leaves beside the model
        return {"p50_ms": ms, "p90_ms": ms, "p99_ms": ms, "peak_rss_mb": 100.0, "base_rss_mb": 50.0,
                "model_mem_mb": 50.0, "file_mb": 1.0, "block_params": 0, "artifact": str(model_dir)}

    def fake_run(model, task, cfg, out, name, progress=True):
        runs.append(cfg.ratio)
        (out / "model").mkdir(parents=True)
        (out / "plan.json").write_text("{}")
        return {"report": {"auto": {"final_val": 1 - 0.01 * cfg.ratio}, "ratio_achieved": cfg.ratio}}

    def fake_write_report(report, out):
        paths = {"json": out / "report.json", "markdown": out / "report.md", "plot": out / "report.png"}
        paths["json"].write_text(json.dumps(report))
        paths["markdown"].write_text("# report\n")
        return paths

    class Task:
        name, metric, higher_is_better = "synthetic", "accuracy", True

    monkeypatch.setattr(measuring, "measure", fake_measure)
    monkeypatch.setattr("cascadeprune.methods.cascade.run_compression", fake_run)
    monkeypatch.setattr("cascadeprune.report.write_report", fake_write_report)
    cfg = build_config(None, ["auto.sia=skip"], ratio=2.0, method="auto", recovery_steps=0)
    res = targets.compress_to_target(load_model(clf_dir), Task(), cfg, tmp_path / "o", "clf",
                                     targets.TargetSpec(latency_ms=0.45, runtime="onnx"), progress=False)
    t = res["report"]["targets"]
    assert t["chosen_ratio"] == 2.5  # 1 / 2.5 = 0.4 <= 0.45 < 1 / 2 = 0.5
    rows = {c["ratio"]: c for c in t["candidates"] if c["kind"] == "auto"}
    assert rows[2.0]["meets"] is False and rows[2.5]["meets"] is True
    assert all(not c["meets"] for r, c in rows.items() if r < 2.5) and all(c["meets"] for r, c in rows.items()
                                                                          if r > 2.5)
    assert measured[:2] == ["max", "dense"]  # the bound first (before any auto run), then dense for the log
    assert runs == [1.25, 2.0, 5.0, 3.0, 2.5]  # galloping 0, 2, 6, then bisection: 5 of 14 candidate ratios
    assert len(measured) == len(t["candidates"]) == 7  # every measurement is listed
    assert (tmp_path / "o" / "model").is_dir() and not (tmp_path / "o" / "targets").exists()
    assert (tmp_path / "o" / "export").is_dir()  # the measured artifact of the chosen candidate
    assert "Deployment target" in (tmp_path / "o" / "report.md").read_text()


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
@pytest.mark.parametrize("flag", ["--latency-ms", "--memory-mb"])
def test_a_bad_budget_exits_2_naming_the_flag(flag, value, capsys):
    assert main(["compress", "m", "--task", "synthetic", "--out", "o", f"{flag}={value}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"argument {flag}:" in err


@pytest.mark.parametrize("args,flag", [
    (["--runtime", "onnx"], "--runtime"), (["--threads", "2"], "--threads"), (["--batch", "4"], "--batch"),
    (["--latency-ms", "2", "--ratio", "2"], "--latency-ms"), (["--memory-mb", "200", "--max-loss", "1"], "--memory-mb"),
    (["--latency-ms", "2", "--method", "cascade"], "--latency-ms"),
])
def test_target_flags_out_of_place_exit_2_naming_the_flag(args, flag, tmp_path, capsys):
    assert main(["compress", "tiny-llama", "--task", "synthetic", "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and flag in err and "Traceback" not in err


def test_dry_run_prints_the_search_and_spends_nothing(clf_dir, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["compress", str(clf_dir), "--task", "synthetic", "--latency-ms", "2", "--out", str(out), "--dry-run",
                 "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["method"] == "auto" and "p50 latency <= 2 ms (onnx" in info["target"]
    assert info["candidate_ratios"][0] == 1.25 and max(info["candidate_ratios"]) < info["max_ratio"]
    assert not out.exists()


def test_a_causal_lm_target_is_refused(tmp_path, capsys):
    assert main(["compress", "tiny-llama", "--task", "lm", "--out", str(tmp_path / "o"), "--latency-ms", "5"]) == 2
    err = capsys.readouterr().err
    assert "--latency-ms" in err and "classifier" in err


def test_target_spec_checks_library_callers():
    with pytest.raises(CascadePruneError, match="--memory-mb"):
        targets.TargetSpec(memory_mb=float("nan")).check()
    with pytest.raises(CascadePruneError, match="--latency-ms or --memory-mb"):
        targets.TargetSpec().check()
    with pytest.raises(CascadePruneError, match="--threads"):
        targets.TargetSpec(latency_ms=1, threads=0).check()
