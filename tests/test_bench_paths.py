"""One path for the CLI and the benchmarks: for the same recipe and seed, the benchmark and
`cascadeprune compress` build the same configuration and produce the same plan."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import torch

from cascadeprune import save_model
from cascadeprune.cli import build_parser, main
from cascadeprune.methods.cascade import compress
from cascadeprune.methods.config import build_config
from cascadeprune.plan import PruningPlan
from cascadeprune.storage.load import load_backbone
from cascadeprune.tasks.bearing.classifier import FrontEndConfig, VibrationClassifier
from cascadeprune.tasks.bearing.protocols import WindowConfig
from cascadeprune.tasks.bearing.task import BearingTask

from benchmarks import cascade as cascade_bench
from benchmarks import lm as lm_bench


def cli_config(cmd: list[str]):
    """The configuration `cascadeprune compress` builds from ``cmd`` (parsed by the real parser)."""
    a = vars(build_parser().parse_args(cmd[1:]))
    return build_config(a["recipe"], a["sets"], ratio=a["ratio"], method=a["method"], seed=a["seed"],
                        recovery_steps=a["recovery_steps"], device=a["device"], calibration=a["calibration"])


@pytest.mark.parametrize("variant, kw", [("cascade", {}), ("oneshot", {}), ("cascade-reverse", {}),
                                         ("cascade-simultaneous", {"shares": (0.3, 0.2, 0.5)}),
                                         ("cascade", {"recovery": "distill", "prune_steps": (1, 2, 3),
                                                      "allocation": "uniform", "keep": "last",
                                                      "speed_jitter": 0.03, "recovery_lr": 2e-4})])
def test_the_cascade_benchmark_command_rebuilds_its_config(variant, kw, tmp_path):
    cfg = cascade_bench.variant_config(variant, 8.7, 123, **kw)
    cmd = cascade_bench.compress_command(Path("ckpt"), "cwru-4class-crossload", variant, 8.7, 123, tmp_path, **kw)
    assert cli_config(shlex.split(shlex.join(cmd))).to_dict() == cfg.to_dict()
    assert cfg.calibration.seed is None  # one seed rule: calibration follows --seed


def test_the_cascade_benchmark_and_the_cli_make_the_same_plan(tmp_path):
    torch.manual_seed(0)
    clf = VibrationClassifier(load_backbone("gpt2-tiny"), ("normal", "inner", "outer", "ball"), FrontEndConfig(512, 16))
    save_model(clf, tmp_path / "clf")
    kw = {"recovery_scale": 0.02}  # 1 + 1 + 4 recovery steps: seconds
    # the benchmark's path: its config, the bearing task with the CLI's windowing, the engine
    cfg = cascade_bench.variant_config("cascade", 3.0, 7, **kw)
    cfg.calibration.n = 32
    task = BearingTask("synthetic", clf.classes, None, WindowConfig(window=512, stride=256))
    bench = compress(clf, task, cfg, tmp_path / "bench", progress=False)
    cmd = cascade_bench.compress_command(tmp_path / "clf", "synthetic", "cascade", 3.0, 7, tmp_path / "cli", **kw)
    assert main(cmd[1:] + ["--set", "calibration.n=32"]) == 0
    plan = PruningPlan.load(tmp_path / "cli" / "plan.json")
    assert plan.to_dict() == bench["state"]["plan"] and plan.layers  # the same, and not trivially empty


def test_the_lm_benchmark_runs_the_cli_and_records_a_reproducing_command(tmp_path, monkeypatch):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text("calibration: {n: 4, batch_size: 2}\nstages:\n"
                      "  - {granularity: layers, recovery: {steps: 1, batch_size: 2}}\n"
                      "  - {granularity: channels, steps: 2, recovery: {steps: 1, batch_size: 2}}\n")
    monkeypatch.setattr(lm_bench, "MODEL", "tiny-llama")
    monkeypatch.setattr(lm_bench, "TASK", "lm@seq=16,eval=2,val=1")
    monkeypatch.setattr(lm_bench, "RECIPES", {"cascade": str(recipe)})
    monkeypatch.setattr(lm_bench, "HERE", tmp_path)
    r = {"method": "cascade", "calibration": "prose:1,code:1", "ratio": 1.5}
    rec = lm_bench.run(r, 11, tmp_path / "lm.jsonl")  # a fresh `python -m cascadeprune.cli compress` process
    assert rec is not None and json.loads((tmp_path / "lm.jsonl").read_text())["seed"] == 11
    assert {"model", "task", "method", "ratio_target", "ratio_achieved", "seed", "calibration", "recovery_steps",
            "perplexity", "command", "date", "commit", "machine"} <= set(rec)
    cmd = shlex.split(rec["command"])
    cmd[cmd.index("--out") + 1] = str(tmp_path / "again")
    assert main(cmd[1:]) == 0  # the recorded command, run by hand
    bench_plan = PruningPlan.load(tmp_path / "runs" / "lm" / f"{lm_bench.name(r)}_seed11" / "plan.json")
    assert PruningPlan.load(tmp_path / "again" / "plan.json") == bench_plan
    again = json.loads((tmp_path / "again" / "report.json").read_text())
    assert again["test"]["perplexity_per_domain"] == pytest.approx(rec["perplexity"], rel=1e-5)


def _lm_rec(method, seed, ppl, wall, date, steps=32, rss=1000, ratio=2.0, val=None, rank=8):
    return {"method": method, "ratio_target": ratio, "seed": seed, "calibration": lm_bench.MIX, "perplexity_mean": ppl,
            "recovery_steps": steps, "wall_s": wall, "process_peak_rss_mb": rss, "load_avg_1m": 2.0, "date": date,
            "stages": [{"val_perplexity_recovered": val}], "recovery_method": "lora", "recovery_targets": "all",
            "recovery_rank": rank, "recovery_lr": 2e-3}


def test_auto_tables_pair_seeds_keep_budgets_apart_and_compare_only_side_by_side_costs(tmp_path):
    recs = [_lm_rec("auto", 1, 80.0, 400, "2026-12-06T01:00:00+00:00", rss=3000, val=50.0),
            _lm_rec("cascade", 1, 9000.0, 100, "2026-12-06T01:30:00+00:00"),
            _lm_rec("auto", 2, 90.0, 500, "2026-12-06T02:00:00+00:00", val=90.0),
            _lm_rec("cascade", 2, 9000.0, 100, "2026-12-04T02:00:00+00:00"),  # two days apart: not side by side
            _lm_rec("shortgpt+auto-recipe", 1, 100.0, 50, "2026-12-06T01:10:00+00:00", val=40.0),
            _lm_rec("shortgpt+auto-recipe", 2, 95.0, 50, "2026-12-06T02:10:00+00:00", val=90.0),
            _lm_rec("auto", 1, 60.0, 900, "2026-12-06T03:00:00+00:00", steps=256),  # 8x budget: its own row
            _lm_rec("magnitude+auto-recipe", 1, 10.0, 50, "2026-12-06T01:20:00+00:00", rank=4),  # not auto's recipe
            _lm_rec("magnitude+auto-recipe", 2, 10.0, 50, "2026-12-06T02:20:00+00:00", rank=4)]
    path = tmp_path / "lm.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    text = lm_bench.auto_targets(path)
    rows = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith(("| ratio", "|---"))]
    assert rows[0].startswith("The current search")  # records without a commit count as the current search
    assert len(rows) == 3 and rows[1].startswith("| 2x | 1, 2 |") and rows[2].startswith("| 2x x8budget | 1 |")
    cells = [c.strip() for c in rows[1].strip("|").split("|")]
    # geo(80, 90) / geo(100, 95); the magnitude runs recovered with another rank are not auto's recipe: not compared
    assert cells[3] == "shortgpt+auto-recipe 97.5" and cells[6] == "no (by 0.121)"
    assert 0 < float(cells[7]) < 1  # the paired p-value over the two seeds
    assert cells[10] == "1.118"  # on validation too: geo(50, 90) / geo(40, 90)
    assert "–" in rows[2].split("|")[6]  # no target on another budget, and no baseline at 8x to compare with
    cost = lm_bench.auto_cost(path)
    assert "| 2x | current | 1 | 400 | 3000 |" in cost and "| 2x | current | 2 |" not in cost
    assert "4.0x over 1 pair(s), missed by 2.0x" in cost
    assert "Search phase alone" not in cost  # no record says how long its search took
    recs[0]["auto"] = {"search_s": 310.0}
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    cost = lm_bench.auto_cost(path)
    assert "| 4.0x | 3.00x | 310 |" in cost  # wall and peak-RSS quotients, then the search phase
    assert "median 310 s, 310-310 s over 1 run(s); the cascade's whole run beside them: 100-100 s." in cost
    assert "would have to be 65 % shorter" in cost  # (400 - 2 * 100) / 310


def test_the_lm_table_counts_a_rerun_seed_once(tmp_path):
    def rec(seed, ppl):
        r = _lm_rec("cascade", seed, ppl, 100, "2026-12-06T01:00:00+00:00")
        return r | {"ratio_achieved": 2.0, "perplexity": {"prose": ppl}, "dense_perplexity": {"prose": 40.0},
                    "dense_perplexity_mean": 40.0}
    path = tmp_path / "lm.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (rec(1, 100.0), rec(1, 300.0), rec(2, 100.0))))
    row = next(ln for ln in lm_bench.table(path).splitlines() if "| cascade |" in ln)
    # seed 1's runs average to 200, then the two seeds: mean 150, sd over 2 seeds (not 3 records: 133.3 ± 115.5)
    assert "| 150.0 ± 70.7 |" in row and row.endswith("| 1, 2 (3 runs) |")


def test_auto_records_from_before_the_finalist_rule_keep_their_own_rows():
    old = {"method": "auto", "commit": "9d59d2b", "recovery_steps": 32}  # the last commit of the old finalists
    new = {"method": "auto", "commit": lm_bench.FINALIST_SHAPES, "recovery_steps": 32}
    assert lm_bench.method_key(old) == "auto" + lm_bench.OLD_FINALISTS
    assert lm_bench.method_key(new) == "auto"
    assert lm_bench.method_key({"method": "shortgpt+auto-recipe", "commit": "9d59d2b", "recovery_steps": 32}) == \
        "shortgpt+auto-recipe"


def test_the_old_finalist_commits_are_exactly_the_auto_records_made_before_the_rule():
    recs = [json.loads(x) for x in lm_bench.RESULTS.read_text().splitlines() if x.strip()]
    rule = "2026-12-06T19:51:08+00:00"  # the date of commit 147d720
    before = {r["commit"][:7] for r in recs if r["method"] == "auto" and r["date"] < rule}
    assert before == lm_bench.OLD_FINALIST_COMMITS


def _fr(method, ratio, seed, test, val=None, dense_val=0.99, snr=None):
    return {"method": method, "ratio_target": ratio, "seed": seed, "test_snr_db": snr, "recovery_scale": 0.5,
            "test_accuracy": test, "dense_test_accuracy": 0.95, "val_accuracy": val,
            "dense_val_accuracy": None if val is None else dense_val}


def test_frontier_auto_targets_compare_with_the_strongest_method_there_and_read_reach_on_validation():
    from benchmarks import frontier

    recs = [_fr("auto", 20, 1, 0.90, 0.985), _fr("auto", 20, 2, 0.92, 0.982), _fr("auto", 20, 1, 0.10, snr=0.0),
            _fr("cascade", 20, 1, 0.91, 0.97), _fr("cascade", 20, 2, 0.93, 0.975),
            _fr("auto", 30, 1, 0.88, 0.95), _fr("auto", 30, 2, 0.86, 0.95),
            _fr("llm-pruner", 30, 1, 0.99),  # one seed of auto's two: not compared at 30x
            _fr("cascade", 10, 1, 0.94, 0.985), _fr("cascade", 10, 2, 0.94, 0.985),
            _fr("magnitude", 10, 1, 0.95)]  # an old record: no validation accuracy, so only a test-split reach
    text = frontier.auto_targets(recs)
    rows = {ln.split("|")[2].strip(): [c.strip() for c in ln.strip("|").split("|")]
            for ln in text.splitlines()[2:4]}
    assert rows["20x"][4] == "cascade" and rows["20x"][6] == "-1.00" and rows["20x"][7] == "no (by 1.00 pp)"
    assert rows["30x"][4].startswith("– (none reaches it)")
    reach = {c[1]: c for c in ([x.strip() for x in ln.strip("|").split("|")] for ln in text.splitlines()
                               if ln.startswith("| 0.5 |") and ln.count("|") == 7)}
    assert reach["auto"][2] == "20x" and reach["cascade"][2] == "10x"  # 0.6 pp within, 1.9 pp not
    assert reach["magnitude"][2] == "–" and reach["magnitude"][3] == "not recorded" and reach["magnitude"][4] == "10x"
    assert "auto / best other = 2.00 (target >= 1.5: met)" in text


def test_frontier_auto_targets_pair_auto_with_each_baseline_given_its_recipe():
    from benchmarks import frontier

    recs = [_fr("auto", 5, 1, 0.90, 0.98), _fr("auto", 5, 2, 0.92, 0.97),
            _fr("llm-pruner+auto-recipe", 5, 1, 0.93, 0.96), _fr("llm-pruner+auto-recipe", 5, 2, 0.94, 0.97),
            _fr("llm-pruner", 5, 1, 0.99), _fr("llm-pruner", 5, 2, 0.99)]  # its own recipe: not in this table
    text = frontier.auto_targets(recs)
    fair = [[c.strip() for c in ln.strip("|").split("|")] for ln in text.splitlines()
            if ln.startswith("| 0.5 |") and "+auto-recipe" in ln and ln.count("|") == 10]
    assert len(fair) == 1
    row = fair[0]
    assert row[1] == "5x" and row[2] == "1, 2" and row[3] == "llm-pruner+auto-recipe"
    assert row[6] == "-2.50"  # (0.91 - 0.935) in pp, on test
    assert float(row[7]) > 0.05 and row[8] == "+1.00"  # paired p over the two seeds; validation (0.975 - 0.965)
    assert "(no `+auto-recipe` run yet)" in frontier.auto_targets(recs[:2])


def test_frontier_gives_auto_recipe_to_the_cascade_without_the_baseline_budget_switch(tmp_path):
    from benchmarks import frontier

    auto = {"method": "auto", "ratio_target": 20.0, "seed": 42, "recovery_scale": 0.5, "recovery_method": "lora",
            "recovery_targets": "all", "recovery_rank": 8, "recovery_lr": 0.002}
    results = tmp_path / "frontier.jsonl"
    results.write_text(json.dumps(auto) + "\n")
    cmd = lambda m: " ".join(frontier.command({"method": m, "ratio": 20.0, "seed": 42}, 0.5, results))  # noqa: E731
    # the cascade takes auto's recipe and keeps its own per-stage schedule; a baseline also gets the budget switch
    assert "baseline_recovery=budget" not in cmd("cascade+auto-recipe")
    assert "stages.*.recovery.targets=all" in cmd("cascade+auto-recipe") and "--method cascade" in cmd("cascade+auto-recipe")
    assert "baseline_recovery=budget" in cmd("llm-pruner+auto-recipe")
    assert "stages.*.recovery.lr=0.002" in cmd("llm-pruner+auto-recipe")
    assert frontier.command({"method": "cascade+auto-recipe", "ratio": 30.0, "seed": 42}, 0.5, results) is None
