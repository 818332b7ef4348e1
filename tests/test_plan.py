"""Plan format, composition and every documented validation rule."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from cascadeprune import PlanError, PruningPlan, apply_plan
from cascadeprune.plan import FORMAT
from cascadeprune.storage.sources import tiny_model


def test_json_round_trip_and_format():
    plan = PruningPlan(layers={3}, heads={0: {1, 5}}, channels={2: {7, 8}})
    data = json.loads(plan.to_json())
    assert data == {"format": FORMAT, "remove": {"layers": [3], "heads": {"0": [1, 5]}, "channels": {"2": [7, 8]}}}
    assert PruningPlan.from_json(plan.to_json()) == plan


def test_union_composes():
    a = PruningPlan(layers={1}, heads={0: {1}})
    b = PruningPlan(heads={0: {2}}, channels={3: {4}})
    assert (a | b) == PruningPlan(layers={1}, heads={0: {1, 2}}, channels={3: {4}})


@pytest.mark.parametrize(
    "text, match",
    [
        ('{"format": "other/1", "remove": {}}', "format"),
        ('{"format": "cascadeprune-plan/1"}', "remove"),
        ('{"format": "cascadeprune-plan/1", "remove": {"neurons": []}}', "unknown key"),
        ('{"format": "cascadeprune-plan/1", "remove": {"layers": [1, 1]}}', r"\[duplicate\].*index 1"),
        ('{"format": "cascadeprune-plan/1", "remove": {"heads": {"0": [2, 2]}}}', r"\[duplicate\].*heads\[0\]"),
        ('{"format": "cascadeprune-plan/1", "remove": {"heads": {"x": [1]}}}', "non-integer layer key"),
        ('{"format": "cascadeprune-plan/1", "remove": {"layers": ["1"]}}', "list of integers"),
        ("{not json", "not valid JSON"),
    ],
)
def test_malformed_plans_are_rejected(text, match):
    with pytest.raises(PlanError, match=match):
        PruningPlan.from_json(text)


LLAMA_RULES = [  # tiny llama: 4 layers, 8 query heads in 2 KV groups (D = 4), 96 channels
    (PruningPlan(layers={4}), r"\[index\] layer index 4"),
    (PruningPlan(layers={0, 1, 2, 3}), r"\[all-layers\]"),
    (PruningPlan(heads={0: {8}}), r"\[index\] layer 0: head index 8"),
    (PruningPlan(heads={5: {0}}), r"\[index\] heads: layer 5"),
    (PruningPlan(channels={1: {96}}), r"\[index\] layer 1: channel index 96"),
    (PruningPlan(heads={2: set(range(8))}), r"\[all-heads\] layer 2"),
    (PruningPlan(channels={3: set(range(96))}), r"\[all-channels\] layer 3"),
    (PruningPlan(heads={1: {0}}), r"\[gqa-groups\] layer 1: .*\[3, 4\]"),
    (PruningPlan(heads={1: {0, 1, 4}}), r"\[gqa-groups\] layer 1"),
]


@pytest.mark.parametrize("plan, match", LLAMA_RULES)
def test_invalid_plan_raises_and_leaves_model_untouched(plan, match):
    model = tiny_model("llama")
    before = copy.deepcopy(model.state_dict())
    config = model.config.to_dict()
    with pytest.raises(PlanError, match=match):
        apply_plan(model, plan, inplace=True)
    assert model.config.to_dict() == config
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_index_dependent_gpt2_refuses_layer_removal():
    model = tiny_model("gpt2")
    model.config.scale_attn_by_inverse_layer_idx = True
    with pytest.raises(PlanError, match=r"\[index-dependent\].*scale_attn_by_inverse_layer_idx"):
        apply_plan(model, PruningPlan(layers={1}))
    apply_plan(model, PruningPlan(heads={1: {0}}))  # heads are fine


def test_units_of_a_removed_layer_are_allowed():
    """Plans from different stages compose: heads removed earlier in a layer that later goes."""
    model = tiny_model("gpt2")
    pruned = apply_plan(apply_plan(model, PruningPlan(heads={1: {0, 1, 2}})), PruningPlan(layers={1}))
    assert pruned.config.num_hidden_layers == 3


def test_cumulative_invalidity_is_checked_on_the_union():
    model = apply_plan(tiny_model("gpt2"), PruningPlan(heads={0: {0, 1}}))
    with pytest.raises(PlanError, match=r"\[all-heads\] layer 0"):
        apply_plan(model, PruningPlan(heads={0: {2, 3}}))
