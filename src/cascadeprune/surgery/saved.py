"""``cascadeprune apply``: a plan file applied to a saved model, the pruned model saved to a new directory.

Example::

    summary = apply_saved("smollm2-135m", "plan.json", "runs/pruned")
    summary["compression_ratio"], summary["stock_loadable"]
"""

from __future__ import annotations

import time


def apply_saved(model: str, plan: str, out: str, overwrite: bool = False) -> dict:
    """Load ``model``, apply the plan in the JSON file ``plan`` (original indices), save the result to ``out``;
    the summary ``apply --json`` prints (block parameters before and after, the ratio against dense, whether the
    directory loads with stock ``transformers``, the seconds the surgery took)."""
    from cascadeprune.accounting import block_params, dense_block_params
    from cascadeprune.plan import PruningPlan
    from cascadeprune.storage import load_model, save_model
    from cascadeprune.surgery.apply import apply_plan

    the_plan = PruningPlan.load(plan)
    m = load_model(model)
    before = block_params(m)
    t0 = time.perf_counter()
    pruned = apply_plan(m, the_plan, inplace=True)
    t_apply = time.perf_counter() - t0
    save_model(pruned, out, overwrite=overwrite)
    rec = pruned.config.cascadeprune
    return {
        "out": str(out),
        "block_params_before": before,
        "block_params_after": block_params(pruned),
        "dense_block_params": dense_block_params(pruned),
        "compression_ratio": dense_block_params(pruned) / block_params(pruned),
        "uniform": rec["uniform"],
        "stock_loadable": rec["stock_loadable"],
        "apply_s": round(t_apply, 4),
    }
