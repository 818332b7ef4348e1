"""Surgery cost on SmolLM2-135M with a ~50% heads + 50% channels plan.

Records plan application time, save time, reload time (stock Auto class and cascadeprune's
loader), the peak resident memory of each phase, and, for scale, one forward pass over a
calibration batch (16 x 64 tokens) of the dense model. Appends one JSON record per run to
benchmarks/results/surgery.jsonl.

    python -m benchmarks.surgery [--repeats 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import transformers

from benchmarks._common import RESULTS_DIR, append_records, provenance
from cascadeprune import PruningPlan, apply_plan, load_model, save_model
from cascadeprune.accounting import block_params
from cascadeprune.arch import dense_dims
from cascadeprune.deploy.memory import peak_rss_mb, reset_peak_rss, rss_mb

RESULTS = RESULTS_DIR / "surgery.jsonl"


def timed(fn):
    """Run fn; return (result, seconds, {peak RSS of the process, growth of RSS over the phase})."""
    reset_peak_rss()
    start = rss_mb()
    t = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t
    peak = peak_rss_mb()
    return out, dt, {"peak_mb": round(peak), "growth_mb": round(peak - start)}


def half_plan(dims) -> PruningPlan:
    """Per layer: one whole KV group plus one query head of every other group (9 -> 4 heads),
    and every other FFN channel (1536 -> 768)."""
    D, G = dims.group_size, dims.num_kv_heads
    heads = {i: set(range(D)) | {g * D + 1 for g in range(1, G)} for i in range(dims.num_layers)}
    channels = {i: set(range(i % 2, dims.intermediate_size, 2)) for i in range(dims.num_layers)}
    return PruningPlan(heads=heads, channels=channels)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(os.cpu_count() or 1)
    transformers.utils.logging.disable_progress_bar()

    model, t_load_gguf, rss_load = timed(lambda: load_model("smollm2-135m"))
    plan = half_plan(dense_dims(model))
    ids = torch.randint(0, model.config.vocab_size, (16, 64), generator=torch.Generator().manual_seed(args.seed))
    with torch.no_grad():
        model(ids[:2, :8])  # warm-up
        _, t_forward, _ = timed(lambda: model(ids))

    apply_s, save_s, reload_s, stock_s, rss = [], [], [], [], {}
    for _ in range(args.repeats):
        m = apply_plan(model, PruningPlan())  # a fresh dense copy each repeat
        pruned, t, rss["apply"] = timed(lambda: apply_plan(m, plan, inplace=True))
        apply_s.append(t)
        with tempfile.TemporaryDirectory() as d:
            _, t, rss["save"] = timed(lambda: save_model(pruned, Path(d) / "out"))
            save_s.append(t)
            reloaded, t, rss["reload"] = timed(lambda: load_model(Path(d) / "out"))
            reload_s.append(t)
            _, t, rss["reload_stock"] = timed(
                lambda: transformers.AutoModelForCausalLM.from_pretrained(Path(d) / "out"))
            stock_s.append(t)
            with torch.no_grad():
                same = torch.equal(reloaded(ids[:2]).logits, pruned(ids[:2]).logits)
        del m

    record = {
        "benchmark": "surgery",
        "model": "smollm2-135m",
        "plan": "heads 9->4 (one KV group + one query head per other group), channels 1536->768, every layer",
        "block_params_dense": block_params(model),
        "block_params_pruned": block_params(pruned),
        "ratio_achieved": round(block_params(model) / block_params(pruned), 4),
        "stock_loadable": pruned.config.cascadeprune["stock_loadable"],
        "reload_identical": same,
        "apply_s": [round(x, 4) for x in apply_s],
        "save_s": [round(x, 4) for x in save_s],
        "reload_load_model_s": [round(x, 4) for x in reload_s],
        "reload_stock_auto_s": [round(x, 4) for x in stock_s],
        "forward_16x64_dense_s": round(t_forward, 4),
        "load_gguf_s": round(t_load_gguf, 2),
        # process peak RSS during each phase (models held by the script included) and its growth
        "peak_rss_mb": {"load_gguf": rss_load, **rss},
        "repeats": args.repeats,
        "seed": args.seed,
        "versions": f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
                    f"transformers {transformers.__version__}",
        **provenance("surgery", sys.argv[1:]),
    }
    append_records(RESULTS, [record])
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
