"""Scores -> valid plans under a parameter budget; naive GQA picks are repaired deterministically."""

from __future__ import annotations

import pytest
import torch

from cascadeprune import apply_plan, predict_block_params
from cascadeprune.accounting import block_params
from cascadeprune.arch import resolve
from cascadeprune.calib import collect
from cascadeprune.importance import SPECS, score
from cascadeprune.methods import repair_heads, select
from cascadeprune.plan import validate
from cascadeprune.storage.sources import tiny_model


def stats(model):
    g = torch.Generator().manual_seed(0)
    return collect(model, [torch.randint(0, 128, (2, 10), generator=g) for _ in range(2)])


@pytest.mark.parametrize("family", ["llama", "qwen2", "gpt2", "bert"])
@pytest.mark.parametrize("granularity, criterion", [("layers", "lcr"), ("heads", "wanda_sp"), ("channels", "l1")])
@pytest.mark.parametrize("mode", ["grouped", "naive"])
def test_selection_is_valid_and_meets_budget(family, granularity, criterion, mode):
    model = tiny_model(family)
    s = resolve(model)
    st = stats(model)
    budget = block_params(model) // {"layers": 3, "heads": 8, "channels": 5}[granularity]  # feasible alone
    # the selection's naive mode (per-head picks, repaired) is tested for every criterion; scoring in naive mode
    # only where the criterion implements it (the others refuse it: it would score exactly as grouped)
    score_mode = mode if SPECS[(granularity, criterion)].naive else "grouped"
    plan = select(granularity, s, score(granularity, criterion, st, mode=score_mode), budget, mode=mode)
    validate(plan, s.dims)
    removed = block_params(model) - predict_block_params(model, plan)
    assert removed > 0 or granularity == "layers"
    if granularity == "layers":
        assert removed <= budget  # whole layers never overshoot
    if granularity != "layers" and not (granularity == "heads" and mode == "naive"):
        assert removed >= budget  # greedy stops at the first unit that reaches the budget
    pruned = apply_plan(model, plan)
    assert block_params(pruned) == predict_block_params(model, plan)


def test_naive_head_picks_are_repaired_deterministically():
    model = tiny_model("llama")  # 8 heads, 2 KV groups of 4
    s = resolve(model)
    scores = {l.orig_index: torch.arange(8, dtype=torch.float64) for l in s.layers}
    picked = {0: {0, 1, 4}, 1: {0, 1, 2, 3}, 2: set(range(8)), 3: {5}}
    plan = repair_heads(s, picked, scores)
    validate(plan, s.dims)
    assert plan.heads[0] == {0, 1, 4, 5}  # 3 picks over 2 groups: 1.5 rounds up, 2 lowest per group
    assert plan.heads[1] == {0, 1, 2, 3}  # a whole group goes with its KV head
    assert plan.heads[2] == {0, 1, 2, 3, 4, 5, 6}  # everything picked: group 0 goes whole, one head must stay
    assert plan.heads[3] == {0, 4}  # 1 pick over 2 groups: 0.5 rounds up, the lowest of each group
    assert repair_heads(s, picked, scores) == plan


@pytest.mark.parametrize("family", ["llama", "gpt2"])
@pytest.mark.parametrize("granularity, mode", [("heads", "grouped"), ("heads", "naive"), ("channels", "grouped")])
def test_units_scored_inf_never_go_even_when_the_budget_is_not_met(family, granularity, mode):
    """A joint cut scores the units of layers it already removes +inf: choosing them saves nothing, so
    the selection must stop short of the budget instead of counting them as removed."""
    model = tiny_model(family)
    s = resolve(model)
    scores = score(granularity, "l1", stats(model), mode=mode)
    gone = s.layers[1].orig_index
    scores[gone] = torch.full_like(scores[gone], float("inf"))
    plan = select(granularity, s, scores, block_params(model), mode=mode, max_fraction=0.9)  # more than exists
    units = plan.heads if granularity == "heads" else plan.channels
    assert not units.get(gone) and any(units.values())
    validate(plan, s.dims)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_uniform_allocation_takes_the_same_share_of_every_layer(family):
    from cascadeprune.accounting import unit_costs

    model = tiny_model(family)
    s = resolve(model)
    # scores that grow with depth: the global ranking empties the first layers, uniform does not
    scores = {l.orig_index: torch.rand(len(l.channels), generator=torch.Generator().manual_seed(i)) + 10 * i
              for i, l in enumerate(s.layers)}
    n_per_layer = [len(l.channels) for l in s.layers]
    budget = unit_costs(s).channel * sum(n_per_layer) // 2
    glob = select("channels", s, scores, budget, max_fraction=0.97)
    uni = select("channels", s, scores, budget, max_fraction=0.97, allocation="uniform")
    g_counts = [len(glob.channels.get(l.orig_index, ())) for l in s.layers]
    u_counts = [len(uni.channels.get(l.orig_index, ())) for l in s.layers]
    assert sum(u_counts) == sum(g_counts) >= sum(n_per_layer) // 2  # the same budget either way
    assert max(u_counts) - min(u_counts) <= 1 < max(g_counts) - min(g_counts)
    for l in s.layers:  # inside a layer, the lowest-scored channels go
        gone = sorted(uni.channels[l.orig_index])
        assert gone == sorted(torch.argsort(scores[l.orig_index])[:len(gone)].tolist())
    validate(uni, s.dims)
    assert block_params(apply_plan(model, uni)) == predict_block_params(model, uni)


def test_allocation_is_checked_where_it_is_set():
    from cascadeprune.methods.config import RecipeError, StageConfig

    with pytest.raises(RecipeError, match=r"stage\.allocation: only a channels stage"):
        StageConfig("heads", allocation="uniform").check("stage")
    from cascadeprune.methods.config import config_from_dict

    with pytest.raises(RecipeError, match=r"^stages\[0\].allocation: .*'global' or 'uniform' \(got 'even'\)$"):
        config_from_dict({"stages": [{"granularity": "channels", "allocation": "even"}]})
    StageConfig("channels", allocation="uniform").check("stage")
    with pytest.raises(ValueError, match="allocation must be one of"):
        select("channels", resolve(tiny_model("gpt2")), {}, 10, allocation="even")
