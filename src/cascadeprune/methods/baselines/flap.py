"""``flap``: fluctuation metric, adaptive structure across layers, bias compensation, no fine-tuning.

Paper: An, Zhao, Yu, Tang and Wang, "Fluctuation-based Adaptive Structured Pruning for Large Language
Models" (FLAP, AAAI 2024).

Defaults followed: the fluctuation metric (their WIFV: the calibration variance of each input feature of
the attention output / FFN down projection times the squared norm of the weight column it feeds; summed
over a head's features; criterion ``fluctuation``); the adaptive structure (their AL-AM): scores are
standardised within each layer and module kind (zero mean, unit sd), then ranked together across all
layers and both kinds, lowest first, each unit costing its parameters, until the target is met (at least
one head stays per layer); bias compensation: the calibration mean of every removed feature times its
weight column is added to the projection's bias (``surgery.compensate_bias``), so a pruned projection
keeps its mean output; no fine-tuning (``baseline_recovery: budget`` gives it the run's recovery budget,
to report it both ways). Where an output projection has no bias, the config switch that makes the
modeling code build one is turned on (Llama/Granite/SmolLM3's ``attention_bias`` / ``mlp_bias``, as the
FLAP authors' code adds biases to LLaMA) so a stock loader keeps the compensation; a family without such a
switch (Mistral, Qwen2, Phi-3) is refused with a clear error rather than given a bias a loader would drop.
"""

from __future__ import annotations

import torch

from cascadeprune.accounting import block_params, predict_block_params, unit_costs
from cascadeprune.arch.resolve import resolve
from cascadeprune.importance import score
from cascadeprune.methods.baselines.common import Baseline, statistics
from cascadeprune.methods.select import repair_heads, select
from cascadeprune.plan import PruningPlan
from cascadeprune.surgery import apply_plan, compensate_bias, ensure_bias


def standardise(v: torch.Tensor) -> torch.Tensor:
    """(v - mean) / sd within one layer's units of one kind (sd 0 or a single unit: all zeros)."""
    v = v.double()
    sd = v.std() if v.numel() > 1 else torch.tensor(0.0, dtype=torch.float64)
    return (v - v.mean()) / sd if sd > 0 else torch.zeros_like(v)


def adaptive_plan(model, head_scores: dict, channel_scores: dict, target: int, max_fraction: float = 0.97):
    """AL-AM: standardised head and channel scores of every layer ranked together, cheapest-to-lose first."""
    s = resolve(model)
    c, D = unit_costs(s), s.dims.group_size
    budget = block_params(model) - target
    if budget <= 0:
        return PruningPlan()
    z_heads = {l.orig_index: standardise(head_scores[l.orig_index]) for l in s.layers}
    z_chans = {l.orig_index: standardise(channel_scores[l.orig_index]) for l in s.layers}
    units = sorted([(float(z_heads[l.orig_index][p]), l.orig_index, 0, p) for l in s.layers for p in range(len(l.heads))]
                   + [(float(z_chans[l.orig_index][p]), l.orig_index, 1, p) for l in s.layers
                      for p in range(len(l.channels))])
    cap = {(l.orig_index, 0): len(l.heads) - 1 for l in s.layers}
    cap |= {(l.orig_index, 1): min(len(l.channels) - 1, int(max_fraction * len(l.channels))) for l in s.layers}
    cost = (c.q_head + (c.kv_head if D == 1 else 0), c.channel)  # a GQA head's KV share is settled by repair
    picked = {key: set() for key in cap}
    total = 0
    for _, layer, kind, pos in units:
        if total >= budget:
            break
        if len(picked[layer, kind]) >= cap[layer, kind] or total + cost[kind] > budget + c.channel:
            continue  # a head that would overshoot is skipped; channels close the gap
        picked[layer, kind].add(pos)
        total += cost[kind]
    heads = repair_heads(s, {l.orig_index: picked[l.orig_index, 0] for l in s.layers}, z_heads)
    chans = {l.orig_index: {l.channels[p] for p in picked[l.orig_index, 1]} for l in s.layers}
    plan = heads | PruningPlan(channels=chans)
    gap = predict_block_params(model, plan) - target
    if gap > 0:  # GQA repair kept heads the greedy pass counted: more channels, in the same standardised order
        rest = {l.orig_index: torch.where(torch.tensor([ch in chans[l.orig_index] for ch in l.channels]),
                                          torch.tensor(float("inf"), dtype=torch.float64), z_chans[l.orig_index])
                for l in s.layers}
        plan = plan | select("channels", s, rest, gap, max_fraction=max_fraction)
    elif gap < 0:  # GQA repair removed whole KV groups the greedy pass did not count: give channels back,
        # highest standardised score first, until the cut is no deeper than the target (within one channel)
        removed = sorted((float(z_chans[l.orig_index][p]), l.orig_index, l.channels[p]) for l in s.layers
                         for p in range(len(l.channels)) if l.channels[p] in plan.channels.get(l.orig_index, ()))
        back: dict[int, set] = {}
        while gap < 0 and removed:
            _, layer, ch = removed.pop()
            back.setdefault(layer, set()).add(ch)
            gap += c.channel
        plan = PruningPlan(layers=plan.layers, heads=plan.heads,
                           channels={k: set(v) - back.get(k, set()) for k, v in plan.channels.items()})
    return plan


def cut(model, batches, target: int, loss_fn, max_fraction: float = 0.97) -> None:
    ensure_bias(model)  # Llama-family: the zero biases compensation needs, counted before the cut is planned
    stats = statistics(model, batches, loss_fn)
    s = stats.structure
    plan = adaptive_plan(model, score("heads", "fluctuation", stats), score("channels", "fluctuation", stats), target,
                         max_fraction)
    compensate_bias(model, plan, {l.orig_index: stats.o_in[i].mean for i, l in enumerate(s.layers)},
                    {l.orig_index: stats.down_in[i].mean for i, l in enumerate(s.layers)})
    apply_plan(model, plan, inplace=True)


METHOD = Baseline("flap", "An et al. 2024 (FLAP)", "heads and FFN channels",
                  "fluctuation (variance of the input feature x squared weight-column norm)",
                  "one shot, adaptive across layers (standardised scores ranked globally), bias compensation",
                  False, cut)
