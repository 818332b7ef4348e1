"""method auto on tiny models: the ratio and masking equivalence, validation-only decisions, max-loss, the uniform
layout, feasibility before compute, the CLI's flags and report. Tiny random Llama (GQA + SwiGLU) with the byte-level
tokenizer and a tiny bearing classifier on synthetic vibration; seconds each."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from cascadeprune import apply_plan, mask_plan
from cascadeprune.accounting import block_params, dense_block_params
from cascadeprune.arch import resolve
from cascadeprune.cli import main
from cascadeprune.errors import CascadePruneError
from cascadeprune.methods.auto import max_ratio, search
from cascadeprune.methods.config import CalibrationConfig, RecoveryConfig, config_from_dict
from cascadeprune.plan import applied_plan, validate
from cascadeprune.storage.sources import tiny_model
from cascadeprune.tasks import get_task

SPEC = "lm@seq=32,eval=4,val=2"
CAL = CalibrationConfig(n=8, batch_size=4)


@pytest.fixture(scope="module")
def task():
    return get_task(SPEC, tiny_model("llama"), source="tiny-llama")


def lm(seed=0):
    return tiny_model("llama", seed=seed)


class Spy:
    """The task as it is, recording which splits are evaluated and whether anything ran at all."""

    def __init__(self, task, test_prefers_the_worst: bool = False):
        self.inner, self.calls, self.flip = task, [], test_prefers_the_worst
        self.name, self.metric, self.higher_is_better = task.name, task.metric, task.higher_is_better

    def calibration_batches(self, *a, **k):
        self.calls.append("calibration")
        return self.inner.calibration_batches(*a, **k)

    def loss(self, model, batch):
        return self.inner.loss(model, batch)

    def evaluate(self, model, split):
        self.calls.append(split)
        m = self.inner.evaluate(model, split)
        if split == "test" and self.flip:  # a test split whose ranking is the reverse of validation's
            m = {**m, "perplexity": 1e6 / self.inner.evaluate(model, "val")["perplexity"]}
        return m

    def train(self, *a, **k):
        self.calls.append("train")
        return self.inner.train(*a, **k)


def _ids():
    return torch.randint(0, 128, (2, 16), generator=torch.Generator().manual_seed(1))


def test_auto_reaches_the_ratio_and_its_plan_equals_masking(task):
    dense = lm()
    model = copy.deepcopy(dense)
    res = search(model, task, 2.0, budget="10", recovery=RecoveryConfig(method="none"), calibration=CAL, sia="skip")
    assert abs(res.ratio_achieved / 2.0 - 1) <= 0.01
    assert dense_block_params(dense) / block_params(res.model) == pytest.approx(res.ratio_achieved)
    assert res.plan == applied_plan(resolve(res.model))
    validate(res.plan, resolve(dense).dims)
    with torch.no_grad():  # no recovery: the compressed model IS the masked dense one
        with mask_plan(dense, res.plan):
            ref = dense(input_ids=_ids()).logits
        assert torch.allclose(res.model(input_ids=_ids()).logits, ref, atol=1e-5)
        assert torch.allclose(apply_plan(dense, res.plan)(input_ids=_ids()).logits, ref, atol=1e-5)
    log = res.log
    assert log["split"] == "val" and log["budget"]["evaluations_used"] <= 10
    assert {d["decision"] for d in log["decisions"]} >= {"granularities", "plan", "recovery"}
    assert all(math.isfinite(c["val"]) and c["wall_s"] >= 0 for c in log["candidates"])


def test_every_decision_is_taken_on_validation_not_on_test(task):
    spy = Spy(task, test_prefers_the_worst=True)
    res = search(lm(), spy, 2.0, budget="16", recovery=RecoveryConfig(steps=2, batch_size=4), calibration=CAL,
                 sia="skip")
    assert "test" not in spy.calls  # the test split is never read while deciding
    cands = res.log["candidates"]
    # each criterion decision is the lowest validation score among its probes ...
    for d in res.log["decisions"]:
        if d["decision"].startswith("criterion:"):
            rows = [c for c in cands if c["phase"] == "criterion" and c["granularity"] == d["decision"][10:]]
            if len(rows) > 1:
                assert d["chosen"] == min(rows, key=lambda c: c["score"])["criterion"]
    # ... the plan is the finalist with the lowest validation score after its short recovery ...
    finals = [c for c in cands if c["phase"] == "finalist"]
    plan_decision = next(d for d in res.log["decisions"] if d["decision"] == "plan")
    assert plan_decision["chosen"] == min(finals, key=lambda c: c["score"])["candidate"]
    # ... while the test split, whose ranking is the reverse of validation's, would have taken another finalist:
    # scored on test exactly as the search scored it on validation (same plan, same short recovery)
    if len({c["val"] for c in finals}) > 1:
        by_test = min(finals, key=lambda c: 1e6 / c["val"])
        assert by_test["candidate"] != plan_decision["chosen"]
    assert set(res.log["plans"]) == {str(c["candidate"]) for c in finals}  # the finalists' plans are logged
    m = copy.deepcopy(lm())
    apply_plan(m, _plan_of(res, plan_decision["chosen"]), inplace=True)
    assert block_params(m) == block_params(res.model)  # the logged plan is the model's
    recipes = [c for c in cands if c["phase"] in ("recipe",)]
    chosen = next(d for d in res.log["decisions"] if d["decision"] == "recovery")["chosen"]
    best_val = min([c["score"] for c in recipes] + [min(c["score"] for c in finals)])
    assert any(c["recipe"] == chosen and c["score"] == best_val for c in recipes) or \
        chosen == {"method": "lora", "targets": "all", "rank": 8, "lr": 1e-3, "schedule": "end"}


def _plan_of(res, cid):
    from cascadeprune.plan import PruningPlan

    return PruningPlan.from_dict(res.log["plans"][str(cid)])


def test_max_loss_stays_within_the_tolerance_on_validation(task):
    spy = Spy(task)
    res = search(lm(), spy, None, max_loss=1.02, budget="24", recovery=RecoveryConfig(method="none"),
                 calibration=CAL, sia="skip")
    ml = res.log["max_loss"]
    assert ml["within"] and res.val / ml["dense_val"] <= 1.02 + 1e-9
    assert res.ratio_achieved > 1.2 and ml["curve"] and all("ratio" in c and "within" in c for c in ml["curve"])
    beyond = [c["ratio"] for c in ml["curve"] if not c["within"]]
    assert all(r > res.ratio_target for r in beyond)  # nothing larger than the choice was within the tolerance
    assert "test" not in spy.calls


def test_layout_uniform_gives_the_same_widths_in_every_kept_layer(task):
    res = search(lm(), task, 1.8, budget="10", layout="uniform", recovery=RecoveryConfig(method="none"),
                 calibration=CAL, sia="skip")
    s = resolve(res.model)
    assert len({len(l.heads) for l in s.layers}) == 1 and len({len(l.channels) for l in s.layers}) == 1
    assert len({len(l.kv_heads) for l in s.layers}) == 1
    assert abs(res.ratio_achieved / 1.8 - 1) <= 0.01
    assert all(c["profile"] == "uniform" for c in res.log["candidates"] if "profile" in c)


def test_an_unreachable_ratio_is_refused_before_any_compute(task):
    spy = Spy(task)
    top = max_ratio(lm())
    with pytest.raises(CascadePruneError, match=r"not reachable by method auto.*at most"):
        search(lm(), spy, top * 1.5, budget="10", recovery=RecoveryConfig(steps=2), calibration=CAL)
    assert spy.calls == []  # no calibration, no evaluation, no training
    uniform_top = max_ratio(lm(), "uniform")
    with pytest.raises(CascadePruneError, match="same widths in every layer"):
        search(lm(), spy, uniform_top * 1.2, budget="10", layout="uniform", recovery=RecoveryConfig(steps=2),
               calibration=CAL)
    assert spy.calls == []


def test_a_ratio_near_the_reachable_bound_finds_a_plan_that_needs_every_granularity(task):
    # near max_ratio channels alone cannot close any share vector's gap (their cap): heads and layers help close
    # it (gpt2-deep at 30x and 50x once found no plan at all while the cascade reached 50x)
    top = max_ratio(lm())
    res = search(lm(), task, 0.9 * top, budget="8", recovery=RecoveryConfig(method="none"), calibration=CAL,
                 sia="skip")
    assert abs(res.ratio_achieved / (0.9 * top) - 1) <= 0.01
    assert res.plan.layers and res.plan.heads and res.plan.channels  # all three were needed


def test_the_sia_check_gates_the_granularities_and_the_log_says_why(task):
    res = search(lm(), task, 1.5, budget="8", recovery=RecoveryConfig(method="none"), calibration=CAL)
    sia = res.log["sia"]
    assert set(sia) == {"layers", "heads", "channels"} and sia["layers"]["verdict"] == "not measured"
    assert all(sia[g]["verdict"] in ("holds", "weak", "violated") and sia[g]["action"] for g in ("heads", "channels"))
    gran = next(d for d in res.log["decisions"] if d["decision"] == "granularities")
    assert all(f"{g}: SIA" in gran["why"] for g in sia)
    if sia["heads"]["action"] == "dropped":
        assert "heads" not in gran["chosen"] and not res.plan.heads


BAD = {
    "--search-budget": (["--search-budget", "lots"], "--search-budget: expected"),
    "--search-budget=0": (["--search-budget", "0"], "--search-budget: expected"),
    "--layout": (["--layout", "diagonal"], "--layout: choose uniform or nonuniform"),
    "--max-loss": (["--max-loss", "-1"], "--max-loss: expected a number"),
    "--max-loss+ratio": (["--max-loss", "1.2", "--ratio", "2"], "--max-loss: give --ratio or --max-loss"),
    "--layout-cascade": (["--layout", "uniform", "--method", "cascade"], "--layout: only --method auto"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_auto_options_exit_2_with_one_line_naming_the_flag(case, tmp_path, capsys, monkeypatch):
    import cascadeprune

    monkeypatch.setattr(cascadeprune, "load_model", lambda *a, **k: pytest.fail("a model was loaded"), raising=False)
    args, expected = BAD[case]
    ratio = [] if "--ratio" in args or "--max-loss" in args else ["--ratio", "2"]
    code = main(["compress", "tiny-llama", "--task", SPEC, "--out", str(tmp_path / "o"), *ratio, *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "o").exists()


def test_cli_unreachable_ratio_exits_2_before_the_search(tmp_path, capsys):
    assert main(["compress", "tiny-llama", "--task", SPEC, "--ratio", "500", "--out", str(tmp_path / "o"),
                 "--method", "auto"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not reachable by method auto" in err
    assert not (tmp_path / "o" / "model").exists()


def test_compress_defaults_to_auto_and_writes_the_decision_log(tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["compress", "tiny-llama", "--task", SPEC, "--ratio", "1.5", "--out", str(out), "--recovery-steps",
                 "2", "--search-budget", "10", "--set", "auto.sia=skip", "--set", "calibration.n=8",
                 "--set", "calibration.batch_size=4"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert report["method"] == "auto" and abs(report["ratio_achieved"] / 1.5 - 1) <= 0.01
    log = report["auto"]
    assert log["candidates"] and log["decisions"] and log["summary"] in printed
    assert "- plan:" in printed and "- recovery:" in printed
    assert "Decision log" in (out / "report.md").read_text()
    assert (out / "model" / "cascadeprune_tokenizer.json").is_file() and (out / "plan.json").is_file()


def test_a_recipe_or_stages_keep_the_staged_engine():
    from cascadeprune.methods.config import auto_overrides as _auto_flags

    assert _auto_flags(None, None, [], 2, None, None, None)[0] == "auto"
    assert _auto_flags(None, None, ["stages.*.recovery.steps=2"], 2, None, None, None)[0] is None
    assert _auto_flags("recipes/lm-cpu.yaml", None, [], 2, None, None, None)[0] is None
    with pytest.raises(Exception, match="auto: only method auto"):
        config_from_dict({"ratio": 2, "method": "cascade", "auto": {"layout": "uniform"}}).check()


def test_auto_on_a_bearing_classifier(tmp_path):
    from cascadeprune.storage.load import load_backbone
    from cascadeprune.tasks.bearing.classifier import FrontEndConfig, VibrationClassifier
    from cascadeprune.tasks.bearing.protocols import WindowConfig, build_dataset
    from cascadeprune.tasks.bearing.task import BearingTask

    win = WindowConfig(window=512, stride=1024)
    torch.manual_seed(0)
    clf = VibrationClassifier(load_backbone("llama-tiny", seed=0), ("normal", "inner", "outer", "ball"),
                              FrontEndConfig(512, 16))
    t = BearingTask("synthetic", ("normal", "inner", "outer", "ball"), windows=win,
                    dataset=build_dataset("synthetic", windows=win))
    res = search(clf, t, 3.0, budget="12", recovery=RecoveryConfig(steps=2, lr=1e-3),
                 calibration=CalibrationConfig(n=32, batch_size=16), sia="skip")
    assert abs(res.ratio_achieved / 3 - 1) <= 0.01 and 0 <= res.val <= 1
    assert res.log["metric"] == "accuracy" and all(0 <= c["val"] <= 1 for c in res.log["candidates"])
    # accuracy is better when higher: the log says so (it once read "lowest validation accuracy")
    whys = [d["why"] for d in res.log["decisions"] if d["decision"] in ("plan", "recovery")]
    assert whys and all(w.startswith("highest validation accuracy") for w in whys)


def test_dry_run_prints_the_reachable_bound_and_spends_nothing(tmp_path, capsys):
    assert main(["compress", "tiny-llama", "--task", SPEC, "--ratio", "2", "--out", str(tmp_path / "o"), "--dry-run",
                 "--json", "--layout", "uniform"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["method"] == "auto" and info["layout"] == "uniform" and info["reachable"]
    assert info["max_ratio"] == pytest.approx(max_ratio(lm(), "uniform"))
    assert not (tmp_path / "o").exists()


def test_cli_max_loss_reports_the_walked_curve(tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["compress", "tiny-llama", "--task", SPEC, "--max-loss", "1.05", "--out", str(out), "--search-budget",
                 "16", "--recovery-steps", "0", "--set", "auto.sia=skip", "--set", "calibration.n=8",
                 "--set", "calibration.batch_size=4"]) == 0
    report = json.loads((out / "report.json").read_text())
    ml = report["auto"]["max_loss"]
    assert ml["within"] and ml["final_loss"] <= 1.05 and report["ratio_target"] == ml["chosen_ratio"] > 1
    assert "Max-loss walk" in (out / "report.md").read_text()
    assert "max-loss 1.05" in capsys.readouterr().out


def test_the_finalists_are_different_mixes_and_include_the_most_layer_heavy_plan():
    from cascadeprune.methods.auto import Candidate, finalist_pool

    def cand(i, layers, profile="global"):
        return Candidate(i, "allocation-descent", {"shares": {"layers": layers, "channels": 1 - layers},
                                                   "profile": profile}, 0.0, (float(i), 0.0), 2.0, 0.0)

    # masked rank (SmolLM2 at 2x, seed 456): one mix in three profiles first, layers-only ninth
    ranked = [cand(0, 0.75), cand(1, 0.75, "ramp_late"), cand(2, 0.75, "uniform"), cand(3, 0.5), cand(4, 0.5, "uniform"),
              cand(5, 1.0), cand(6, 0.25)]
    assert [c.id for c in finalist_pool(ranked)] == [0, 5, 3]  # best, layers only, next distinct shares
    assert [c.id for c in finalist_pool(ranked, 2)] == [0, 5]
    assert [c.id for c in finalist_pool(ranked, 1)] == [0]
    # no layers-only plan reaches the ratio: the most layer-heavy one stands in; one mix only: its other profiles
    assert [c.id for c in finalist_pool([cand(0, 0.5), cand(1, 0.875), cand(2, 0.25)])] == [0, 1, 2]
    assert [c.id for c in finalist_pool([cand(0, 0.5), cand(1, 0.5, "uniform")])] == [0, 1]
    no_layers = [Candidate(i, "allocation-grid", {"shares": {"channels": 1.0}, "profile": p}, 0.0, (i, 0), 2.0, 0.0)
                 for i, p in enumerate(("global", "uniform", "ramp_late", "ramp_early"))]
    assert [c.id for c in finalist_pool(no_layers)] == [0, 1, 2]
