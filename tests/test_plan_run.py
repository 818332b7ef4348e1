"""The run's plan: the dry run and the run share one planning path; a target out of reach stops before any
calibration pass or recovery step; a stage that removes nothing spends nothing and the report says why."""

from __future__ import annotations

import copy
import json

import pytest
import torch

import cascadeprune.methods.cascade as cascade_mod
from cascadeprune.accounting import Shape, block_params, predict_block_params
from cascadeprune.cli import main
from cascadeprune.errors import CascadePruneError
from cascadeprune.methods.cascade import compress, plan_run
from cascadeprune.methods.config import build_config
from cascadeprune.methods.feasibility import InfeasibleTargetError
from cascadeprune.plan import PruningPlan
from cascadeprune.storage.load import load_backbone, load_model
from cascadeprune.tasks import get_task
from cascadeprune.tasks.bearing.classifier import FrontEndConfig, VibrationClassifier
from cascadeprune.tasks.bearing.protocols import WindowConfig, build_dataset
from cascadeprune.tasks.bearing.task import BearingTask

LM = "lm@seq=16,eval=2,val=2"
WIN = WindowConfig(window=512, stride=1024)
CLASSES = ("normal", "inner", "outer", "ball")


def cli(argv: list[str]) -> int:
    """main()'s exit status; a flag the parser refuses ends in SystemExit(2), as from the shell."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def cfg(ratio, method="cascade", sets=()):
    """Three stages, one recovery step each, a small calibration set (what the tests can afford)."""
    return build_config(None, ["stages.*.recovery.steps=1", "calibration.n=8", "calibration.batch_size=4", *sets],
                        ratio=ratio, method=method, seed=3)


@pytest.fixture(scope="module")
def ds():
    return build_dataset("synthetic", windows=WIN)


def classifier(backbone: str):
    torch.manual_seed(0)
    return VibrationClassifier(load_backbone(backbone, seed=0), CLASSES, FrontEndConfig(512, 16))


def model_and_task(name: str, ds):
    if name.startswith("clf-"):  # a vibration classifier around a tiny backbone
        return classifier(name[4:]), BearingTask("synthetic", CLASSES, windows=WIN, dataset=ds)
    m = load_model(name)
    return m, get_task(LM, m, source=name)


def test_a_shape_counts_what_the_model_would_have():
    m = load_model("tiny-llama")
    sh = Shape.of(m)
    assert sh.block_params() == block_params(m)
    plan = PruningPlan(layers={1}, heads={0: {0, 1, 2, 3}, 2: {0, 4}}, channels={3: set(range(10))})
    assert sh.after(plan).block_params() == predict_block_params(m, plan)


@pytest.mark.parametrize("name,ratio,method", [("tiny-llama", 1.5, "cascade"), ("tiny-llama", 3.0, "cascade"),
                                               ("tiny-gpt2", 1.5, "cascade"), ("tiny-gpt2", 4.0, "cascade"),
                                               ("clf-tiny-bert", 6.0, "cascade"), ("tiny-gpt2", 2.0, "oneshot"),
                                               ("tiny-gpt2", 2.0, "magnitude")])
def test_the_dry_run_is_the_run(name, ratio, method, ds, tmp_path):
    """Every stage the plan announces runs with the cut and the recovery steps it announced (the GQA heads cut,
    marked inexact, within one of its units), and the report says the same."""
    m, task = model_and_task(name, ds)
    c = cfg(ratio, method)
    planned = plan_run(m, c)["stages"]
    res = compress(copy.deepcopy(m), task, c, tmp_path / "run", progress=False)
    ran = res["state"]["stages"]
    assert [r["granularity"] for r in ran] == [p["granularity"] for p in planned]
    for p, r in zip(planned, ran):
        assert (r["skipped"] is not None) == (p["skipped"] is not None), (p, r)
        assert r["recovery_steps"] == p["recovery"]["steps"]
        if p["exact"]:
            assert r["block_params"] == p["block_params_after"], (p, r)
    assert ran[-1]["block_params"] == planned[-1]["block_params_after"]  # the last stage closes the gap exactly
    assert res["ratio_achieved"] == pytest.approx(ratio, rel=0.01)


def test_the_layers_stage_that_cannot_take_a_whole_layer_is_skipped_and_spends_nothing(tmp_path, monkeypatch):
    """tiny-llama at 1.5x: the layers stage's share (23,040 params) is less than one layer (28,800), so it removes
    nothing; it used to spend 8 recovery steps anyway, and the dry run claimed it removed 23,040."""
    m = load_model("tiny-llama")
    c = cfg(1.5)
    plan = plan_run(m, c)
    first = plan["stages"][0]
    assert first["granularity"] == "layers" and first["remove_params"] == 0 and first["recovery"]["steps"] == 0
    assert "smaller than one of its units" in first["skipped"]
    recovered = []
    real = cascade_mod.recover
    monkeypatch.setattr(cascade_mod, "recover", lambda model, task, rc, **k: recovered.append(k["desc"]) or
                        real(model, task, rc, **k))
    task = get_task(LM, m, source="tiny-llama")
    from cascadeprune.methods.cascade import run_compression

    res = run_compression(m, task, c, tmp_path / "run", name="tiny-llama", progress=False)
    assert not any("layers" in d for d in recovered) and len(recovered) == 2
    rep = json.loads((tmp_path / "run" / "report.json").read_text())
    assert rep["stages"][0]["skipped"] == first["skipped"] and rep["stages"][0]["recovery_steps"] == 0
    md = (tmp_path / "run" / "report.md").read_text()
    assert "layers (skipped)" in md and "stage 0 (layers) was skipped: its share" in md
    assert res["report"]["ratio_achieved"] == pytest.approx(1.5, rel=0.01)


@pytest.mark.parametrize("method", ["cascade", "oneshot", "simultaneous", "magnitude", "shortgpt"])
def test_an_unreachable_ratio_fails_before_any_calibration_or_recovery(method, monkeypatch, tmp_path):
    spent = []
    monkeypatch.setattr(cascade_mod, "recover", lambda *a, **k: spent.append("recover"))
    monkeypatch.setattr(cascade_mod, "collect", lambda *a, **k: spent.append("collect"))

    class Task:  # any use of the task is a cost the run should not have started
        name, metric, higher_is_better = "t", "accuracy", True

        def __getattr__(self, item):
            spent.append(item)
            raise AssertionError(f"task.{item} used")

    m = load_model("tiny-llama")
    with pytest.raises(InfeasibleTargetError, match=r"ratio 1000 is not reachable .*at most \d+\.\d\dx"):
        compress(m, Task(), cfg(1000.0, method), tmp_path / "run", progress=False)
    assert spent == [] and not (tmp_path / "run").exists()


def test_the_cli_fails_first_on_the_issue_repro_with_one_line(tmp_path, capsys):
    out = tmp_path / "x"
    rc = main(["compress", "tiny-llama", "--task", "lm@seq=32,eval=8,val=4", "--ratio", "1000", "--recipe",
               "recipes/lm-cpu.yaml", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "ratio 1000 is not reachable" in err and "at most 24.32x" in err  # the real run stopped at 24.32x
    assert not out.exists()  # no checkpoint, no recovery log, nothing written
    assert main(["compress", "tiny-llama", "--task", "lm@seq=32,eval=8,val=4", "--ratio", "1000", "--recipe",
                 "recipes/lm-cpu.yaml", "--out", str(out), "--dry-run"]) == 2  # the dry run refuses it too


def test_the_dry_run_prints_a_table_and_json(capsys):
    args = ["compress", "tiny-llama", "--task", "lm@seq=16", "--ratio", "1.5", "--recipe", "recipes/lm-cpu.yaml",
            "--out", "unused", "--dry-run"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "{" not in text and "stage  granularity" in text and "at most 24.32x" in text
    assert "none (skipped: its share (23,040 block params) is smaller than one of its units" in text
    assert "lora, 16 steps" in text
    assert main(args + ["--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["remove_params"] for r in rows][0] == 0 and rows[-1]["block_params_after"] == 76_800


@pytest.mark.parametrize("ratio", ["1e300", "1e6", "1.0000001"])
def test_extreme_ratios_never_crash_the_dry_run(ratio, capsys):
    rc = cli(["compress", "tiny-llama", "--task", "lm@seq=16", "--ratio", ratio, "--out", "unused", "--dry-run"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and err.count("\n") == 1 and "ratio" in err
