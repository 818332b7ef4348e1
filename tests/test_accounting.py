"""One compression ratio, defined on transformer-block parameters."""

from __future__ import annotations

import pytest

from cascadeprune import PruningPlan, apply_plan, compression_ratio, param_breakdown
from cascadeprune.accounting import block_params, dense_block_params, flops_per_token
from cascadeprune.storage.sources import tiny_model


def test_ratio_counts_blocks_only():
    model = tiny_model("gpt2")  # 4 identical layers
    half = apply_plan(model, PruningPlan(layers={0, 1}))
    assert compression_ratio(model, half) == pytest.approx(2.0)
    assert compression_ratio(block_params(model), block_params(half)) == pytest.approx(2.0)
    assert dense_block_params(half) == block_params(model)
    before, after = param_breakdown(model), param_breakdown(half)
    assert after["embeddings"] == before["embeddings"] and after["head"] == before["head"]
    assert after["blocks"] * 2 == before["blocks"]


def test_flops_shrink_with_heads():
    model = tiny_model("bert")
    pruned = apply_plan(model, PruningPlan(heads={i: {0, 1} for i in range(4)}))
    f0, f1 = flops_per_token(model, 128), flops_per_token(pruned, 128)
    assert f1["attention"] * 2 == f0["attention"]
    assert f1["linear"] < f0["linear"]
