"""benchmarks/sia_verdicts.py: the group-aware criterion is chosen on validation (never test), a collapse is
naive losing > 30 pp without recovery, and a verdict is scored right or wrong against it. Synthetic records."""

from __future__ import annotations


from benchmarks import sia_verdicts as sv


def run(model, criterion, mode, recovery, seed, drop, val, remedy="none"):
    return {"benchmark": "sia-collapse", "model": model, "criterion": criterion, "mode": mode, "remedy": remedy,
            "recovery": recovery, "seed": seed, "drop_pp": drop, "drop_pp_before_recovery": drop + 5,
            "recovery_steps": 0 if recovery == "none" else 180,
            "stages": [{"val_accuracy_recovered": val}]}


def check(model, verdict):
    return {"benchmark": "sia", "run": f"{model}-raw-heads", "criterion": "wanda_sp", "mode": "grouped",
            "ratio": 1.2, "seed": 42, "command": "cascadeprune sia ...",
            "result": {"verdict": verdict, "static": {"verdict": "violated"},
                       "sets": {"criterion": {"A": 4.0, "determined": True}, "random": [{"A": 1.1, "determined": False}]},
                       "pairs": {"within": {"median": 0.2}, "across": {"median": 0.05}},
                       "rank": {"tau_halves": 0.9, "tau_rescore": 0.5}}}


def test_validation_chooses_and_collapse_is_scored():
    m = "llama-10m"
    recs = [check(m, "violated")]
    for seed in (42, 123):
        recs += [run(m, "l1", "naive", "none", seed, 45.0, 0.3), run(m, "l1", "naive", "lora", seed, 20.0, 0.6),
                 # l1 grouped is better on test, taylor grouped on validation: taylor must be chosen
                 run(m, "l1", "grouped", "lora", seed, 2.0, 0.70), run(m, "taylor", "grouped", "lora", seed, 8.0, 0.80),
                 run(m, "l1", "grouped", "none", seed, 12.0, 0.5), run(m, "taylor", "grouped", "none", seed, 15.0, 0.6)]
    rows = sv.summarise(recs)
    (row,) = rows
    assert row["grouped_key"] == ("taylor", "grouped", "none")
    assert sv.collapsed(row) is True
    s = row["stats"]["heads"]
    assert s["A_abs_dev_median"] == 3.0 and s["A_graded"] == 1 and s["verdict"] == "violated"
    text = sv.table(rows)
    assert ("| llama-10m | yes | collapse (right) | collapse (right) | collapse (right) | no (taylor (grouped) without "
            "recovery: 15.0 ± 0.0 pp; best way after LoRA 8.0 ± 0.0 pp) |") in text
    recs_out = sv.records(rows)
    assert len(recs_out) == 2 * 2  # granularities x seeds
    r = next(x for x in recs_out if x["granularity"] == "heads" and x["seed"] == 42)
    assert r["drop_naive_pp_no_recovery"] == 45.0 and r["drop_grouped_pp"] == 8.0 and r["verdict"] == "violated"
    assert r["drop_naive_pp_before_recovery"] == 25.0 and r["grouped_criterion"] == "taylor (grouped)"


def test_no_collapse_makes_a_violated_verdict_wrong():
    m = "gqa-gelu-10m"
    recs = [check(m, "violated"), run(m, "l1", "naive", "none", 42, 4.0, 0.9)]
    (row,) = sv.summarise(recs)
    assert sv.collapsed(row) is False
    assert "| gqa-gelu-10m | no | collapse (wrong) | collapse (wrong) | collapse (wrong) | – |" in sv.table([row])


def test_verdict_is_the_majority_over_classifier_seeds():
    m = "gpt2-10m"
    recs = [check(m, "weak"), run(m, "l1", "naive", "none", 42, 4.0, 0.9)]
    for seed, v in ((123, "violated"), (456, "weak")):
        c = check(m, v)
        c["run"] = f"{m}-raw-heads-s{seed}"
        recs.append(c)
    (row,) = sv.summarise(recs)
    assert row["verdicts"]["heads"] == {42: "weak", 123: "violated", 456: "weak"}
    assert sv.model_verdict(row, "heads") == "weak" and sv.majority(["violated", "weak"]) == "violated"
    text = sv.table([row])
    assert "| weak / violated / weak | **weak** |" in text
    (rec,) = [r for r in sv.records([row]) if r["granularity"] == "heads"]
    assert rec["verdict"] == "weak" and rec["verdict_majority"] == "weak"


def test_record_appends_only_what_changed():
    m = "llama-10m"
    rows = sv.summarise([check(m, "violated"), run(m, "l1", "naive", "none", 42, 45.0, 0.3)])
    first = sv.records(rows)
    new, same = sv.new_records(first, [])
    assert len(new) == len(first) == 2 and same == 0
    again = [dict(r, date="later", commit="abc") for r in sv.records(rows)]
    assert sv.new_records(again, first) == ([], 2)
    changed = sv.records(sv.summarise([check(m, "violated"), run(m, "l1", "naive", "none", 42, 40.0, 0.3)]))
    new, same = sv.new_records(changed, first)
    assert len(new) == 2 and all(r["drop_naive_pp_no_recovery"] == 40.0 for r in new)


def test_each_trained_model_is_scored_against_its_own_drop():
    m = "all-minilm-l6-v2"
    recs = []
    for seed, v, drop in ((42, "weak", 18.7), (123, "violated", 30.8), (456, "holds", 39.9)):
        c = check(m, v)
        c["run"] = f"{m}-raw-heads" + ("" if seed == 42 else f"-s{seed}")
        recs += [c, run(m, "l1", "naive", "none", seed, drop, 0.5)]
    (row,) = sv.summarise(recs)
    right, wrong = sv.per_model_instance([row])
    assert right == [f"{m} seed 42", f"{m} seed 123"] and wrong == [f"{m} seed 456"]
    assert f"right on 2 of 3; wrong on {m} seed 456" in sv.table([row])


def test_best_way_is_tested_against_naive_with_scipy_paired_over_seeds():
    from scipy import stats

    m = "llama-10m"
    naive, best = {42: 40.0, 123: 35.0, 456: 50.0}, {42: 5.0, 123: 4.0, 456: 9.0}
    recs = [check(m, "violated")]
    for seed in naive:
        recs += [run(m, "l1", "naive", "none", seed, naive[seed], 0.3),
                 run(m, "taylor", "grouped", "none", seed, best[seed], 0.8)]
    (row,) = sv.summarise(recs)
    lines = sv.paired_tests([row])
    p = stats.ttest_rel(list(best.values()), list(naive.values())).pvalue
    assert f"| llama-10m | taylor (grouped) − naive `l1` | no recovery | 42, 123, 456 | -35.7 pp | {p:.3g} |" in lines
