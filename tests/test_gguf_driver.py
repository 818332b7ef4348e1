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


def test_breakdown_on_a_tiny_model(tmp_path, monkeypatch):
    """--breakdown: k-block models and a plan's model built by plan + surgery, benched, the decode time fitted;
    records carry a kind, and the main table ignores them (unchanged by their presence)."""
    from cascadeprune.plan import PruningPlan

    monkeypatch.setattr(gguf_bench, "MODEL", "tiny-llama")
    monkeypatch.setattr(gguf_bench, "TASK", "lm:prose@seq=32,eval=2,val=1")
    monkeypatch.setattr(gguf_bench, "RUNS", tmp_path / "runs")
    plan = tmp_path / "plan.json"  # per-layer heads, KV heads and FFN widths, a layer removed: deci
    plan.write_text(PruningPlan(layers={1}, heads={0: {0, 1, 2, 3}, 2: {1, 5}},
                                channels={0: set(range(30)), 2: set(range(0, 96, 2))}).to_json())
    results = tmp_path / "gguf.jsonl"
    recs = gguf_bench.breakdown(["--breakdown"], results, plan, quants=("f16",), threads=(1,), runs=2)
    assert [json.loads(x)["kind"] for x in results.read_text().splitlines()] == [r["kind"] for r in recs]
    pts = [r for r in recs if r["kind"] == "breakdown_point"]
    assert [(p["method"], p["n_layers"]) for p in pts] == [("first-blocks", 1), ("first-blocks", 2), ("dense", 4),
                                                           ("plan", 3)]
    assert pts[-1]["arch"] == "deci" and pts[-1]["ratio"] > 1 and pts[2]["ratio"] == 1
    for p in pts:
        assert p["weights_mb"] > 0 and p["kv_cache_mb"] > 0 and p["tg_decode_ms"] > 0 and KEYS - {"ppl_mean"} <= set(p)
    (f,) = [r for r in recs if r["kind"] == "breakdown_fit"]
    assert f["fixed_ms"] >= 0 and f["per_layer_ms"] >= 0 and f["points"] == 3 and f["host_ms"] is not None
    assert f["plan_predicted_token_ms"] > 0 and f["plan_measured_token_ms"] > 0
    text = gguf_bench.breakdown_table(recs)
    assert "Where a generated token's time goes" in text and "| f16 | 1 |" in text and "| plan " in text
    main = [{"benchmark": "gguf", "model": "m", "method": "dense", "ratio": 1.0, "quant": "f16", "threads": 1,
             "arch": "llama", "ppl_mean": 2.0, "pp_tok_s": 1.0, "tg_tok_s": 1.0, "model_mem_mb": 1.0, "file_mb": 1.0}]
    assert gguf_bench.table(main + recs) == gguf_bench.table(main) and gguf_bench.breakdown_table(main) == ""
