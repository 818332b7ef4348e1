"""Calibration statistics and criteria on cases with a known answer."""

from __future__ import annotations

import math

import pytest
import torch

from cascadeprune.arch import resolve
from cascadeprune.calib import collect
from cascadeprune.importance import names, score
from cascadeprune.storage.sources import tiny_model


def batches(model, n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, model.config.vocab_size, (2, 10), generator=g) for _ in range(n)]


def lm_loss(model, ids):
    return model(input_ids=ids, labels=ids).loss


def stats_for(model, gradients=True):
    return collect(model, batches(model), loss_fn=lm_loss, gradients=gradients)


def test_all_criteria_registered():
    assert set(names("layers")) >= {"lcr", "block_influence", "ablation", "random"}
    for g in ("heads", "channels"):
        assert set(names(g)) >= {"l1", "taylor", "activation", "wanda_sp", "fluctuation", "random"}


@pytest.mark.parametrize("family", ["llama", "gpt2"])
@pytest.mark.parametrize("criterion", ["lcr", "block_influence"])
def test_identity_layer_scores_lowest(family, criterion):
    model = tiny_model(family)
    layer = resolve(model).layers[2]
    with torch.no_grad():  # zero what the block adds to the residual stream: the block is an identity
        for m in (layer.o, layer.down):
            m.weight.zero_()
            if getattr(m, "bias", None) is not None:
                m.bias.zero_()
    scores = score("layers", criterion, stats_for(model, gradients=False))
    assert scores[0] == scores[3] == math.inf  # first and last protected
    assert scores[2] < 1e-6 < scores[1]
    assert min(scores, key=scores.get) == 2


def _zero_head(model, layer_pos, head):
    s = resolve(model)
    l, hd = s.layers[layer_pos], s.dims.head_dim
    with torch.no_grad():
        if s.family.qkv_layout == "split":
            for m in (l.q, l.k, l.v):
                m.weight[head * hd:(head + 1) * hd] = 0
                if m.bias is not None:
                    m.bias[head * hd:(head + 1) * hd] = 0
        else:  # GPT-2 Conv1D: [q | k | v] columns
            n = len(l.heads) * hd
            for b in range(3):
                l.qkv.weight[:, b * n + head * hd:b * n + (head + 1) * hd] = 0
                l.qkv.bias[b * n + head * hd:b * n + (head + 1) * hd] = 0
        o = l.o.weight
        if s.family.weight_layout == "conv1d":
            o[head * hd:(head + 1) * hd] = 0
        else:
            o[:, head * hd:(head + 1) * hd] = 0


@pytest.mark.parametrize("family", ["gpt2", "bert"])
@pytest.mark.parametrize("criterion", ["l1", "activation", "taylor", "wanda_sp", "fluctuation"])
def test_zeroed_head_scores_lowest(family, criterion):
    model = tiny_model(family)
    _zero_head(model, 1, 2)
    if family == "bert":
        st = collect(model, batches(model), loss_fn=lambda m, ids: m(input_ids=ids).last_hidden_state.pow(2).mean(),
                     gradients=True)
    else:
        st = stats_for(model)
    s = score("heads", criterion, st)[1]
    assert int(torch.argmin(s)) == 2 and s[2] < 1e-9 < s.max()


@pytest.mark.parametrize("criterion", ["l1", "activation", "taylor", "wanda_sp", "fluctuation"])
def test_zeroed_gated_channel_scores_lowest(criterion):
    model = tiny_model("llama")
    l = resolve(model).layers[1]
    with torch.no_grad():
        l.up.weight[5] = 0
        l.gate.weight[5] = 0
        l.down.weight[:, 5] = 0
    s = score("channels", criterion, stats_for(model))[1]
    assert int(torch.argmin(s)) == 5 and s[5] < 1e-9 < s.max()


def test_naive_mode_sees_single_projections_only():
    """Zeroing only the gate row: the grouped L1 score drops, the naive (up-only) score does not."""
    model = tiny_model("llama")
    st = stats_for(model, gradients=False)
    before_g, before_n = score("channels", "l1", st)[0][7], score("channels", "l1", st, mode="naive")[0][7]
    with torch.no_grad():
        resolve(model).layers[0].gate.weight[7] = 0
    st = stats_for(model, gradients=False)
    assert score("channels", "l1", st)[0][7] < before_g
    assert score("channels", "l1", st, mode="naive")[0][7] == before_n


def test_gqa_head_scores_share_kv_and_follow_pruning():
    from cascadeprune import PruningPlan, apply_plan

    model = apply_plan(tiny_model("llama"), PruningPlan(heads={0: {4, 5, 6, 7}}))  # layer 0 keeps group 0 only
    st = stats_for(model)
    for crit in ("l1", "taylor", "wanda_sp", "activation", "fluctuation", "random"):
        s = score("heads", crit, st)
        assert s[0].shape == (4,) and s[1].shape == (8,)
        assert torch.isfinite(s[0]).all()


def test_statistics_are_running_sums():
    model = tiny_model("gpt2")
    a, b = batches(model, n=2)
    sa, sb, both = collect(model, [a]), collect(model, [b]), collect(model, [a, b])
    assert both.o_in[0].count == sa.o_in[0].count + sb.o_in[0].count == 2 * 2 * 10
    assert torch.allclose(both.down_in[1].sumsq, sa.down_in[1].sumsq + sb.down_in[1].sumsq)
    assert both.layers[1].ratio_sum == pytest.approx(sa.layers[1].ratio_sum + sb.layers[1].ratio_sum)
    assert not both.grads  # no gradients unless asked
    ga = collect(model, [a], loss_fn=lm_loss, gradients=True)
    gab = collect(model, [a, b], loss_fn=lm_loss, gradients=True)
    gb = collect(model, [b], loss_fn=lm_loss, gradients=True)
    w = resolve(model).layers[0].up.weight
    assert torch.allclose(gab.grad(resolve(model).layers[0].up), ga.grads[id(w)] + gb.grads[id(w)], atol=1e-6)
    assert all(not p.requires_grad or p.grad is None for p in model.parameters())


def test_ablation_measures_loss_increase_and_identity_layer_is_free():
    from cascadeprune.calib import collect_ablation

    model = tiny_model("gpt2")
    layer = resolve(model).layers[1]
    with torch.no_grad():
        for m in (layer.o, layer.down):
            m.weight.zero_()
            m.bias.zero_()
    bs = batches(model)
    st = collect_ablation(model, bs, lm_loss, collect(model, bs))
    scores = score("layers", "ablation", st)
    assert abs(scores[1]) < 1e-6 and scores[2] != 0
    assert min(scores, key=scores.get) == 1
    with pytest.raises(ValueError, match="collect_ablation"):
        score("layers", "ablation", collect(model, bs))


@pytest.mark.parametrize("criterion", ["lcr", "block_influence", "ablation", "random"])
def test_every_layer_criterion_protects_the_ends_unless_told_not_to(criterion):
    from cascadeprune.calib import collect_ablation

    model = tiny_model("gpt2")
    st = stats_for(model, gradients=False)
    if criterion == "ablation":
        collect_ablation(model, batches(model), lm_loss, st)
    protected = score("layers", criterion, st, seed=3)
    assert protected[0] == protected[3] == math.inf
    assert all(math.isfinite(protected[i]) for i in (1, 2))
    free = score("layers", criterion, st, seed=3, protect_ends=False)
    assert all(math.isfinite(v) for v in free.values())
