"""The cascade engine on tiny classifiers: ratio, resume, one-shot, recipes, the CLI."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

import cascadeprune.methods.cascade as cascade_mod
from cascadeprune import load_model, save_model
from cascadeprune.accounting import block_params
from cascadeprune.cli import main
from cascadeprune.errors import CascadePruneError
from cascadeprune.methods.cascade import compress, dry_run
from cascadeprune.methods.config import CalibrationConfig, CompressConfig, RecipeError, RecoveryConfig, StageConfig, \
    config_from_dict, load_recipe
from cascadeprune.plan import applied_plan
from cascadeprune.arch import resolve
from cascadeprune.storage.load import load_backbone
from cascadeprune.tasks.bearing.classifier import FrontEndConfig, VibrationClassifier
from cascadeprune.tasks.bearing.protocols import WindowConfig, build_dataset
from cascadeprune.tasks.bearing.task import BearingTask
from conftest import check_compressed

RECIPES_DIR = Path(__file__).resolve().parents[1] / "recipes"
RECIPES = sorted(RECIPES_DIR.glob("*.yaml"))
WIN = WindowConfig(window=512, stride=1024)


@pytest.fixture(scope="module")
def ds():
    return build_dataset("synthetic", windows=WIN)


def classifier(backbone="gpt2-tiny", seed=0):
    torch.manual_seed(seed)
    return VibrationClassifier(load_backbone(backbone, seed=seed), ("normal", "inner", "outer", "ball"),
                               FrontEndConfig(512, 16))


def config(ratio, method="cascade", steps=4, **kw):
    rec = RecoveryConfig(steps=steps, lr=1e-3)
    stages = [StageConfig(g, recovery=copy.deepcopy(rec)) for g in ("layers", "heads", "channels")]
    return CompressConfig(ratio=ratio, method=method, stages=stages, seed=7, calibration=CalibrationConfig(n=48),
                          **kw).check()


def task(ds):
    """The bearing task on the module's synthetic dataset (calibration: 48 training windows)."""
    return BearingTask("synthetic", ("normal", "inner", "outer", "ball"), windows=WIN, dataset=ds)


@pytest.mark.parametrize("backbone", ["gpt2-tiny", "llama-tiny"])
@pytest.mark.parametrize("method", ["cascade", "oneshot", "simultaneous"])
@pytest.mark.parametrize("ratio", [2.5, 8.7])
def test_reaches_ratio_within_one_percent_and_reloads(backbone, method, ratio, ds, tmp_path):
    clf = classifier(backbone)
    dense = block_params(clf)
    res = compress(clf, task(ds), config(ratio, method), tmp_path / "run", progress=False)
    check_compressed(res, dense, ratio, torch.from_numpy(ds.x["test"][:8]), tmp_path)
    n_stages = 1 if method == "oneshot" else 3
    assert len(res["state"]["stages"]) == n_stages
    assert (tmp_path / "run" / "checkpoints" / f"stage-{n_stages - 1:02d}" / "classifier.json").is_file()


@pytest.mark.parametrize("method", ["cascade", "oneshot"])
def test_an_unreachable_ratio_stops_before_recovery_with_a_clear_error(method, ds, tmp_path, monkeypatch):
    recovered = []
    monkeypatch.setattr(cascade_mod, "recover", lambda *a, **k: recovered.append(1) or {"steps": 0, "wall_s": 0.0})
    expected = rf"ratio 1000 is not reachable by method '{method}'.*at most .*the cut would stop at"
    with pytest.raises(CascadePruneError, match=expected) as err:
        compress(classifier(), task(ds), config(1000.0, method), tmp_path / "run", progress=False)
    assert recovered == []  # the plan refuses the ratio before any stage runs (tests/test_plan_run.py)
    # the hint names only what can help: one-shot cuts once, so more channel steps would not
    assert ("more channel steps" in str(err.value)) == (method == "cascade")


def test_resume_after_an_interrupted_stage_gives_the_same_plan(ds, tmp_path, monkeypatch):
    base = classifier()
    full = compress(copy.deepcopy(base), task(ds), config(6.0), tmp_path / "a", progress=False)
    real_recover = cascade_mod.recover
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("power cut during stage 2")
        return real_recover(*a, **k)

    monkeypatch.setattr(cascade_mod, "recover", flaky)
    with pytest.raises(RuntimeError, match="power cut"):
        compress(copy.deepcopy(base), task(ds), config(6.0), tmp_path / "b", progress=False)
    state = json.loads((tmp_path / "b" / "checkpoints" / "state.json").read_text())
    assert state["completed"] == 1  # the last good checkpoint is intact
    assert not (tmp_path / "b" / "checkpoints" / "stage-02").exists()
    monkeypatch.setattr(cascade_mod, "recover", real_recover)
    resumed = compress(copy.deepcopy(base), task(ds), config(6.0), tmp_path / "b", resume=True, progress=False)
    assert applied_plan(resolve(resumed["model"])) == applied_plan(resolve(full["model"]))
    x = torch.from_numpy(ds.x["test"][:8])
    with torch.no_grad():
        assert torch.allclose(resumed["model"](x), full["model"](x), atol=1e-5)


def test_resume_with_another_config_is_refused(ds, tmp_path):
    compress(classifier(), task(ds), config(3.0, steps=1), tmp_path / "a", progress=False)
    with pytest.raises(Exception, match="another configuration"):
        compress(classifier(), task(ds), config(4.0, steps=1), tmp_path / "a", resume=True, progress=False)


def test_dry_run_budgets_sum_to_the_target():
    clf = classifier("gpt2-mini")
    rows = dry_run(clf, config(13.8))
    assert [r["granularity"] for r in rows] == ["layers", "heads", "channels"]
    assert rows[-1]["ratio_after"] == pytest.approx(13.8, rel=1e-3)
    # the plan is the run's own cut: stages remove whole units, and the last one closes the gap to within a channel
    assert block_params(clf) - sum(r["remove_params"] for r in rows) == rows[-1]["block_params_after"]
    from cascadeprune.accounting import unit_costs

    assert 0 <= round(block_params(clf) / 13.8) - rows[-1]["block_params_after"] < unit_costs(resolve(clf)).channel


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_every_shipped_recipe_loads(recipe):
    cfg = load_recipe(recipe)
    cfg.ratio = cfg.ratio or 4.0
    cfg.check()
    assert abs(sum(st.share for st in cfg.stages) - 1) < 1e-9


def test_recipes_reject_unknown_keys(tmp_path):
    with pytest.raises(RecipeError, match=r"^stages\[0\].recovery.rnak: unknown key$"):
        config_from_dict({"stages": [{"granularity": "heads", "recovery": {"rnak": 4}}]})
    with pytest.raises(RecipeError, match=r"^ratoi: unknown key$"):
        config_from_dict({"ratoi": 3})
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages: [{granularity: neurons}]\nratio: 2\n")
    with pytest.raises(RecipeError, match=r"bad.yaml: stages\[0\].granularity: .*'neurons'"):
        load_recipe(bad).check()
    with pytest.raises(RecipeError, match="criterion"):
        config_from_dict({"ratio": 2, "stages": [{"granularity": "layers", "criterion": "wanda_sp"}]}).check()


def test_compress_cli_end_to_end(ds, tmp_path, capsys):
    save_model(classifier("llama-tiny"), tmp_path / "clf")
    args = ["compress", str(tmp_path / "clf"), "--task", "synthetic", "--ratio", "3", "--out", str(tmp_path / "c"),
            "--recovery-steps", "3", "--recipe", str(RECIPES_DIR / "cpu-fast.yaml")]
    assert main(args + ["--dry-run", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[-1]["ratio_after"] == pytest.approx(3.0, rel=1e-3)
    assert not (tmp_path / "c" / "model").exists()
    assert main(args) == 0
    report = json.loads((tmp_path / "c" / "report.json").read_text())
    assert abs(report["ratio_achieved"] / 3 - 1) <= 0.01
    assert {"accuracy_pruned", "accuracy_recovered", "val_accuracy_pruned", "val_accuracy_recovered", "wall_s",
            "peak_rss_mb"} <= set(report["stages"][0])
    assert 0.0 <= report["dense"]["val_accuracy"] <= 1.0
    assert "validation accuracy after pruning" in (tmp_path / "c" / "report.md").read_text()
    assert (tmp_path / "c" / "report.png").stat().st_size > 1000 and "| stage |" in (tmp_path / "c" / "report.md").read_text()
    assert load_model(tmp_path / "c" / "model").classes == ("normal", "inner", "outer", "ball")
    assert main(args) == 2  # refuses to clobber without --overwrite / --resume
    assert "--resume" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["full", "distill", "lora", "none"])
def test_recovery_methods(method, ds):
    from cascadeprune.recovery import recover

    clf = classifier("llama-tiny")
    teacher = copy.deepcopy(clf).eval()
    before = {k: v.clone() for k, v in clf.state_dict().items()}
    rep = recover(clf, task(ds), RecoveryConfig(method=method, steps=3, lr=1e-2), seed=0, teacher=teacher, progress=False)
    changed = {k for k, v in clf.state_dict().items() if not torch.equal(v, before[k])}
    assert rep["steps"] == (0 if method == "none" else 3)
    assert set(clf.state_dict()) == set(before)  # adapters merged away, same tensors as before
    if method == "none":
        assert not changed
    elif method == "full":
        assert any(".mlp." in k for k in changed)
    else:  # LoRA on attention only (+ front end and head)
        assert changed and not any(".mlp." in k for k in changed)
        assert any("self_attn" in k for k in changed)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_recovery_can_keep_the_front_end_frozen(method, ds):
    from cascadeprune.recovery import recover

    clf = classifier("llama-tiny")
    before = {k: v.clone() for k, v in clf.state_dict().items()}
    recover(clf, task(ds), RecoveryConfig(method=method, steps=3, lr=1e-2, task={"train_frontend": False}), seed=0, progress=False)
    changed = {k for k, v in clf.state_dict().items() if not torch.equal(v, before[k])}
    assert any(k.startswith("head.") for k in changed) and any("self_attn" in k for k in changed)
    assert not any(k.startswith("frontend.") for k in changed)
    assert all(p.requires_grad for p in clf.parameters())  # a later stage starts from a fully trainable model
    clf2 = classifier("llama-tiny")
    recover(clf2, task(ds), RecoveryConfig(method=method, steps=3, lr=1e-2), seed=0, progress=False)
    assert any(k.startswith("frontend.") and not torch.equal(v, before[k]) for k, v in clf2.state_dict().items())


def test_holdout_load_view_resplits_for_cross_load_validation(ds):
    from cascadeprune.tasks.bearing.protocols import holdout_load_view
    from cascadeprune.tasks.bearing.recording import DataError

    view = holdout_load_view(ds, 2.0)
    assert 2.0 not in set(view.load["train"]) and set(view.load["val"]) == {2.0}
    n_held = (ds.load["train"] == 2.0).sum() + (ds.load["val"] == 2.0).sum()
    assert len(view.x["val"]) == len(view.y["val"]) == n_held
    assert len(view.x["train"]) == (ds.load["train"] != 2.0).sum()
    assert view.x["test"] is ds.x["test"] and len(ds.x["train"]) > len(view.x["train"])  # input untouched
    with pytest.raises(DataError, match="load 3 is not a training load"):
        holdout_load_view(ds, 3.0)


def test_recovery_with_a_held_out_load_keeps_the_best_cross_load_state(ds, monkeypatch):
    from cascadeprune.recovery import recover
    import cascadeprune.tasks.bearing.train as train_mod

    seen = {}
    real = train_mod.train_classifier

    def spy(model, data, cfg, **kw):
        seen["val_loads"], seen["eval_every"] = set(data.load["val"]), cfg.eval_every
        return real(model, data, cfg, **kw)

    monkeypatch.setattr(train_mod, "train_classifier", spy)
    rep = recover(classifier(), task(ds), RecoveryConfig(steps=12, task={"holdout_load": 2.0}), seed=0, progress=False)
    assert rep["steps"] == 12 and seen == {"val_loads": {2.0}, "eval_every": 5}


def test_recovery_can_keep_its_last_state_instead_of_the_best_validated(ds, monkeypatch):
    from cascadeprune.recovery import recover
    from cascadeprune.tasks.bearing import train as train_mod

    seen = []
    real = train_mod.train_classifier
    monkeypatch.setattr(train_mod, "train_classifier", lambda m, d, cfg, **k: seen.append(cfg) or real(m, d, cfg, **k))
    rep = recover(classifier(), task(ds), RecoveryConfig(steps=7, keep="last"), seed=0, progress=False)
    assert rep["steps"] == 7 and seen[-1].eval_every >= 7  # validated only at the end: the last state stays
    recover(classifier(), task(ds), RecoveryConfig(steps=7), seed=0, progress=False)
    assert seen[-1].eval_every is None  # the default: once per epoch and at the end, best kept


def test_recovery_device_and_keep_are_checked_with_the_key_named():
    with pytest.raises(RecipeError, match=r"stages\[0\].recovery.keep: .*'best_val' or 'last' \(got 'best'\)"):
        config_from_dict({"stages": [{"granularity": "heads", "recovery": {"keep": "best"}}]}).check(False)
    with pytest.raises(RecipeError, match=r"stages\[0\].recovery.device: device 'gpu0' is not a torch device"):
        config_from_dict({"stages": [{"granularity": "heads", "recovery": {"device": "gpu0"}}]}).check(False)
    if not torch.cuda.is_available():
        with pytest.raises(RecipeError, match="no CUDA device is available"):
            config_from_dict({"stages": [{"granularity": "heads", "recovery": {"device": "cuda"}}]}).check(False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_recovery_on_cuda_matches_the_cpu_model_placement(ds):
    from cascadeprune.recovery import recover

    clf = classifier()
    rep = recover(clf, task(ds), RecoveryConfig(steps=3, device="cuda"), seed=0, progress=False)
    assert rep["steps"] == 3 and all(p.device.type == "cpu" for p in clf.parameters())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_compress_cli_refuses_a_missing_device_before_touching_anything(tmp_path, capsys):
    save_model(classifier(), tmp_path / "clf")
    out = tmp_path / "c"
    assert main(["compress", str(tmp_path / "clf"), "--task", "synthetic", "--ratio", "3", "--out", str(out),
                 "--device", "cuda"]) == 2
    assert "recovery.device: device 'cuda': no CUDA device is available" in capsys.readouterr().err
    assert not out.exists()


def test_report_of_a_run_without_validation_numbers_shows_dashes():
    from cascadeprune.report.compress_report import markdown

    stage = {"stage": 0, "granularity": "layers", "block_params": 50, "ratio": 2.0, "accuracy_pruned": 0.5,
             "accuracy_recovered": 0.75, "recovery_steps": 3, "wall_s": 1.0, "peak_rss_mb": 10}
    md = markdown({"model": "m", "task": "t", "method": "cascade", "ratio_target": 2.0, "ratio_achieved": 2.0,
                   "block_params": 50, "seed": 1, "accuracy": 0.75, "dense": {"block_params": 100, "accuracy": 0.9},
                   "stages": [stage]})
    row = next(line for line in md.splitlines() if line.startswith("| 0 |"))
    assert row.split(" | ")[4:8] == ["50.00 %", "75.00 %", "–", "–"]
