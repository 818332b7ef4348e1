"""The backbone of correctness: physical removal must compute what masking computes."""

from __future__ import annotations

import copy

import pytest
import torch

from cascadeprune import PruningPlan, apply_plan, mask_plan, predict_block_params
from cascadeprune.accounting import block_params
from cascadeprune.arch import resolve
from cascadeprune.storage.sources import tiny_model
from conftest import DECODERS, FAMILIES, PLAN_KINDS, forward, greedy_masked_and_pruned, inputs, make_plan

TOL = 1e-5


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("kind", PLAN_KINDS)
@pytest.mark.parametrize("uniform", [True, False], ids=["uniform", "nonuniform"])
@pytest.mark.parametrize("seed", [0, 1])
def test_pruned_equals_masked(family, kind, uniform, seed):
    model = tiny_model(family, seed)
    plan = make_plan(model, kind, uniform, seed)
    assert not plan.is_empty()
    batch = inputs(model, seed)
    dense = forward(model, batch)
    with mask_plan(model, plan):
        masked = forward(model, batch)
    pruned = apply_plan(model, plan)
    out = forward(pruned, batch)
    assert (out - masked).abs().max().item() <= TOL
    # not vacuous: the plan really changed the computation and the size
    assert (dense - masked).abs().max().item() > 1e-3
    assert block_params(pruned) < block_params(model)
    assert block_params(pruned) == predict_block_params(model, plan)


@pytest.mark.parametrize("family", DECODERS)
@pytest.mark.parametrize("kind", ["layers", "heads", "mixed"])
def test_cached_greedy_generation_equals_masked(family, kind):
    model = tiny_model(family, 3)
    plan = make_plan(model, kind, uniform=False, seed=3)
    ref, got = greedy_masked_and_pruned(model, plan, 8)
    assert torch.equal(ref.sequences, got.sequences)
    assert len(got.logits) == 8
    assert max((a - b).abs().max().item() for a, b in zip(ref.logits, got.logits)) <= TOL


def test_empty_plan_is_identity(model):
    batch = inputs(model)
    pruned = apply_plan(model, PruningPlan())
    assert torch.equal(forward(pruned, batch), forward(model, batch))
    assert block_params(pruned) == block_params(model) == predict_block_params(model, PruningPlan())


def test_input_model_untouched(model):
    before = copy.deepcopy(model.state_dict())
    config_before = model.config.to_dict()
    apply_plan(model, make_plan(model, "mixed", False, 0))
    assert model.config.to_dict() == config_before
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def split_plan(plan: PruningPlan) -> tuple[PruningPlan, PruningPlan]:
    """Two valid plans whose union is ``plan``: layers and even-layer heads in the first, odd-layer
    heads in the second, channels split in halves with some overlap (a unit removed twice)."""
    heads_a = {l: h for l, h in plan.heads.items() if l % 2 == 0}
    heads_b = {l: h for l, h in plan.heads.items() if l % 2 == 1}
    ch = {l: sorted(c) for l, c in plan.channels.items()}
    ch_a = {l: c[: len(c) // 2 + 1] for l, c in ch.items()}
    ch_b = {l: c[len(c) // 2 :] for l, c in ch.items()}
    return PruningPlan(plan.layers, heads_a, ch_a), PruningPlan(frozenset(), heads_b, ch_b)


@pytest.mark.parametrize("seed", [0, 1])
def test_incremental_equals_union(family, seed):
    model = tiny_model(family, seed)
    plan = make_plan(model, "mixed", False, seed)
    a, b = split_plan(plan)
    assert (a | b) == plan and not a.is_empty() and not b.is_empty()
    step = apply_plan(apply_plan(model, a), b)
    both = apply_plan(model, plan)
    batch = inputs(model, seed)
    assert torch.equal(forward(step, batch), forward(both, batch))
    assert step.config.cascadeprune["remove"] == both.config.cascadeprune["remove"] == plan.to_dict()["remove"]
    assert [l.heads for l in resolve(step).layers] == [l.heads for l in resolve(both).layers]


def test_gqa_whole_group_removes_kv_head():
    model = tiny_model("llama")  # 8 query heads, 2 KV heads: D = 4
    pruned = apply_plan(model, PruningPlan(heads={1: {4, 5, 6, 7}}))
    layer = resolve(pruned).layers[1]
    assert layer.kv_heads == (0,) and layer.heads == (0, 1, 2, 3)
    assert layer.k.out_features == layer.v.out_features == 8
    assert layer.attention.num_key_value_groups == 4
    even = apply_plan(model, PruningPlan(heads={2: {0, 4}}))  # one per group: D 4 -> 3
    assert resolve(even).layers[2].attention.num_key_value_groups == 3


def test_layer_removal_renumbers_layer_idx():
    pruned = apply_plan(tiny_model("llama"), PruningPlan(layers={0, 2}))
    s = resolve(pruned)
    assert [l.attention.layer_idx for l in s.layers] == [0, 1]
    assert [l.orig_index for l in s.layers] == [1, 3]
    assert pruned.config.num_hidden_layers == 2
