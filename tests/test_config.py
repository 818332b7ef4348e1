"""Typed configuration: every mistake is refused before any model is loaded, exit 2, one line naming the key."""

from __future__ import annotations

import pytest

from cascadeprune.cli import main
from cascadeprune.methods.config import RecipeError, build_config, config_from_dict, parse_mix

BAD_RECIPES = {
    "misspelled key": ("method: cascade\nstages:\n  - {granularity: layers, critrion: lcr}\n",
                       "stages[0].critrion: unknown key"),
    "misspelled criterion option": ("stages:\n  - {granularity: layers, criterion: lcr, options: {protect_end: false}}\n",
                                    "stages[0].options: layers criterion 'lcr' has no option 'protect_end'"),
    "naive without a naive mode": ("stages:\n  - {granularity: channels, criterion: activation, mode: naive}\n",
                                   "stages[0].mode: channels criterion 'activation' has no naive mode"),
    "duplicate stage": ("stages:\n  - {granularity: heads}\n  - {granularity: channels}\n  - {granularity: heads}\n",
                        "stages[2].granularity: 'heads' is already stage 0"),
    "negative recovery": ("stages:\n  - {granularity: heads, recovery: {steps: -3}}\n",
                          "stages[0].recovery.steps: Input should be greater than or equal to 0"),
    "impossible ratio": ("ratio: 0.5\n", "ratio: must be > 1"),
    "task option on a task without options": ("stages:\n  - {granularity: heads, recovery: {task: {speed_jitter: 0}}}\n",
                                              "stages[0].recovery.task: task 'lm' takes no recovery options "
                                              "(got speed_jitter)"),
    "unknown method": ("method: greedy\n", "method: no method 'greedy'; choose one of cascade, oneshot, simultaneous, auto, magnitude, wanda-sp, "
                       "llm-pruner, flap, shortgpt (got 'greedy')"),
}


@pytest.mark.parametrize("case", sorted(BAD_RECIPES))
def test_bad_recipes_exit_2_with_one_line_naming_the_key(case, tmp_path, capsys, monkeypatch):
    text, expected = BAD_RECIPES[case]
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    import cascadeprune

    # refused before any model is loaded: loading would fail loudly here
    monkeypatch.setattr(cascadeprune, "load_model", lambda *a, **k: pytest.fail("a model was loaded"), raising=False)
    ratio = [] if "ratio:" in text else ["--ratio", "2"]
    code = main(["compress", "tiny-llama", "--task", "lm", *ratio, "--out", str(tmp_path / "o"), "--recipe",
                 str(recipe)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert expected in err and str(recipe) in err
    assert not (tmp_path / "o").exists()


def test_criteria_with_a_naive_mode_accept_it():
    cfg = config_from_dict({"ratio": 2, "stages": [{"granularity": "channels", "criterion": "l1", "mode": "naive"},
                                                    {"granularity": "heads", "criterion": "taylor", "mode": "naive"}]})
    assert [s.mode for s in cfg.check().stages] == ["naive", "naive"]


def test_criterion_options_reach_the_criterion():
    cfg = config_from_dict({"ratio": 2, "stages": [{"granularity": "layers", "options": {"protect_ends": False}}]})
    assert cfg.check().stages[0].criterion_options() == {"mode": "grouped", "protect_ends": False}


def test_flags_then_sets_then_validation(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("seed: 1\nstages:\n  - {granularity: layers, recovery: {steps: 5}}\n"
                      "  - {granularity: channels, recovery: {steps: 9}}\n")
    cfg = build_config(recipe, ["stages.*.recovery.lr=0.01", "stages.1.steps=3", "calibration.seed=7"], ratio=2,
                       seed=5, recovery_steps=4, calibration="prose:0.5,code")
    assert cfg.seed == 5 and cfg.ratio == 2 and cfg.calibration.seed == 7
    assert [s.recovery.steps for s in cfg.stages] == [4, 4] and [s.recovery.lr for s in cfg.stages] == [0.01, 0.01]
    assert cfg.stages[1].steps == 3 and cfg.calibration.mix == {"prose": 0.5, "code": 1.0}
    with pytest.raises(RecipeError, match=r"stages\[0\].recovery.lrr: unknown key"):
        build_config(recipe, ["stages.*.recovery.lrr=0.01"], ratio=2)
    with pytest.raises(RecipeError, match=r"--set stages.5.steps: stages.5 is not an item"):
        build_config(recipe, ["stages.5.steps=2"], ratio=2)
    with pytest.raises(RecipeError, match="weight 'x' of 'prose' is not a number"):
        parse_mix("prose:x")


def test_the_seed_rule_calibration_follows_the_run_seed_unless_set():
    from cascadeprune.methods.cascade import calibration_seed

    assert calibration_seed(build_config(None, ratio=2, seed=123)) == 123
    assert calibration_seed(build_config(None, ["calibration.seed=0"], ratio=2, seed=123)) == 0


def test_a_calibration_domain_the_lm_task_lacks_is_refused_before_loading(tmp_path, capsys, monkeypatch):
    import cascadeprune

    monkeypatch.setattr(cascadeprune, "load_model", lambda *a, **k: pytest.fail("a model was loaded"), raising=False)
    code = main(["compress", "tiny-llama", "--task", "lm:prose,code", "--ratio", "2", "--out", str(tmp_path / "o"),
                 "--calibration", "prose:0.5,poetry:0.5"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.endswith("calibration.mix: domain 'poetry' is not in task lm:prose,code (domains: prose, code)")


def test_a_tasks_own_recovery_options_are_checked_before_a_model_loads(tmp_path, capsys, monkeypatch):
    import cascadeprune

    monkeypatch.setattr(cascadeprune, "load_model", lambda *a, **k: pytest.fail("a model was loaded"), raising=False)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("stages:\n  - {granularity: heads, recovery: {task: {speed_jiter: 0.0}}}\n")
    code = main(["compress", "no-such-dir", "--task", "synthetic", "--ratio", "2", "--out", str(tmp_path / "o"),
                 "--recipe", str(recipe)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.endswith("stages[0].recovery.task.speed_jiter: unknown key"), err
    # the same key spelled right passes the check (and fails later, on the model that does not exist)
    monkeypatch.undo()
    recipe.write_text("stages:\n  - {granularity: heads, recovery: {task: {speed_jitter: 0.0, holdout_load: 1}}}\n")
    main(["compress", "no-such-dir", "--task", "synthetic", "--ratio", "2", "--out", str(tmp_path / "o"),
          "--recipe", str(recipe)])
    assert "recovery.task" not in capsys.readouterr().err
