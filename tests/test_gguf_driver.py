"""benchmarks/gguf.py on a tiny setting: the picking rule, and one run (export, bench) writing to a temporary
results file with every key the table needs. Never skipped under CI=true (fails without llama-cpp-python)."""

from __future__ import annotations

import json
import os

import pytest

try:
    import llama_cpp  # noqa: F401
except ModuleNotFoundError:
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("needs the [gguf] extra (llama-cpp-python)", allow_module_level=True)

from benchmarks import gguf as gguf_bench

KEYS = {"model", "method", "ratio", "quant", "threads", "ppl_mean", "pp_tok_s", "tg_tok_s", "peak_rss_mb",
        "model_mem_mb", "file_mb", "commit", "date", "machine"}


def _rec(method, ratio, seed, val, steps=32):
    return {"model": "smollm2-135m", "method": method, "ratio_target": ratio, "seed": seed, "recovery_steps": steps,
            "stages": [{"val_perplexity_recovered": val}], "commit": "", "command":
            f"cascadeprune compress smollm2-135m --task t --ratio {ratio} --out x --method {method}"}


def test_pick_rule(monkeypatch):
    monkeypatch.setattr(gguf_bench, "record_status", lambda r: "ok")
    recs = [_rec("shortgpt+budget", 2.0, 42, 100), _rec("shortgpt+budget", 2.0, 123, 300),  # mean 200
            _rec("flap+budget", 2.0, 42, 150), _rec("flap+budget", 2.0, 123, 180),  # mean 165: best
            _rec("magnitude", 2.0, 42, 50, steps=0),  # no recovery: not eligible
            _rec("cascade", 2.0, 123, 10)]  # no seed-42 record to re-run: not eligible
    assert gguf_bench.pick(recs, 2.0)["method"] == "flap+budget"
    assert gguf_bench.pick(recs, 2.0, gguf_bench.UNIFORM_METHODS)["method"] == "shortgpt+budget"
    models = gguf_bench.plan(recs, (2.0,))
    assert [m["name"] for m in models] == ["dense", "flap+budget-2", "shortgpt+budget-2"]
    assert models[1]["compress"][-2:] == ["--method", "flap+budget"] and "x" not in models[1]["compress"]


def test_one_tiny_run_writes_every_key(tmp_path, monkeypatch):
    monkeypatch.setattr(gguf_bench, "MODEL", "tiny-llama")
    monkeypatch.setattr(gguf_bench, "TASK", "lm:prose@seq=32,eval=2,val=1")
    monkeypatch.setattr(gguf_bench, "QUANTS", ("q8_0",))
    monkeypatch.setattr(gguf_bench, "THREADS", (1,))
    monkeypatch.setattr(gguf_bench, "RUNS", tmp_path / "runs")
    results = tmp_path / "gguf.jsonl"
    recs = gguf_bench.run(gguf_bench.plan([], ()), ["--test"], results)
    assert len(recs) == 1 and [json.loads(x)["quant"] for x in results.read_text().splitlines()] == ["q8_0"]
    for r in recs:
        assert KEYS <= set(r) and r["tg_tok_s"] > 0 and r["ppl_mean"] > 1
    assert "| dense | 1 | q8_0 | 1 | llama |" in gguf_bench.table(recs)
