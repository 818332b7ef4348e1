"""The results pages are generated from the records and checked: `make results` then `git diff --exit-code`
in one test, plus the rules the generator applies (provenance flags, Holm, reruns are not seeds)."""

from __future__ import annotations

import json

import pytest

from benchmarks import _common, results_pages as rp


def test_pages_match_the_records():
    """docs/results/*.md and the README's headline block are exactly what the records give today."""
    assert rp.main(["--check"]) == 0, "generated pages are stale: run `make results` and commit the result"


def test_provenance_rule_flags_missing_commits_and_dirty_trees():
    head = _common.commit_and_dirty()[0]
    assert _common.record_status({"commit": head}) == "ok"
    assert _common.record_status({"commit": head, "dirty": True}) == "dirty"
    assert _common.record_status({"commit": head + "+dirty"}) == "dirty"  # the older spelling
    assert _common.record_status({"commit": "0000000"}) == "missing commit"
    assert _common.record_status({}) == "no commit"


def test_provenance_fields_follow_one_rule():
    p = _common.provenance("dense", ["--seeds", "42"])
    assert set(p) == {"date", "command", "commit", "dirty", "machine", "device", "load_avg_1m"}
    assert p["command"] == "python -m benchmarks.dense --seeds 42"
    assert _common.commit_exists(p["commit"]) and isinstance(p["dirty"], bool)


def test_flagged_rows_are_marked_not_dropped():
    full = "| a | b |\n|---|---|\n| x | 1.0 ± 0.1 |\n| y | 2 |"
    clean = "| a | b |\n|---|---|\n| x | 1.1 |\n| y | 2 |"
    assert rp._mark_rows(full, clean).splitlines()[2:] == ["| ⚑ x | 1.0 ± 0.1 |", "| y | 2 |"]


def test_holm_within_a_table():
    assert _common.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    md = rp._add_holm("| m | p (two-sided) |\n|---|---|\n| a | 0.01 |\n| b | 0.04 |\n| c | – |")
    lines = md.splitlines()
    assert lines[0] == "| m | p (two-sided) | p Holm (2 tests) |"
    assert lines[2:] == ["| a | 0.01 | 0.02 |", "| b | 0.04 | 0.04 |", "| c | – | – |"]


def test_a_rerun_is_not_a_seed(tmp_path, monkeypatch):
    recs = [{"benchmark": "dense", "model": "m", "method": "dense", "seed": s, "accuracy": a}
            for s, a in ((42, 0.9), (42, 0.91), (123, 0.8))]
    (tmp_path / "x.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    monkeypatch.setattr(rp, "RESULTS_DIR", tmp_path)
    a = rp.audit("x.jsonl")
    assert (a["records"], a["runs"], a["reruns"], a["seeds"]) == (3, 2, 1, [42, 123])
