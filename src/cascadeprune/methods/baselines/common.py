"""What the published baselines share: the method record, calibration, and the uniform schedule.

A baseline is a complete pruning method with its authors' units, criterion, schedule and recovery
policy; the engine (``methods/cascade.py``) runs it with the run's calibration batches, target
ratio and recovery budget, exactly as it runs the cascade. ``cut`` removes units in place until the
model has ``target`` block parameters (within one FFN channel, or the nearest whole layer for
layer-only methods, which refuse a ratio they cannot reach within 1 %).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from cascadeprune.accounting import block_params, predict_block_params, unit_costs
from cascadeprune.arch.resolve import Structure, resolve
from cascadeprune.calib import collect
from cascadeprune.methods.select import repair_heads, select
from cascadeprune.plan import PruningPlan


@dataclass(frozen=True)
class Baseline:
    name: str  # the --method name
    paper: str  # who published it
    units: str  # what it removes
    criterion: str  # how it scores them
    schedule: str  # how it spreads the cut
    fine_tunes: bool  # its authors recover (LoRA / fine-tuning) after pruning
    # cut(model, batches, target_block_params, loss_fn, max_channel_fraction) -> None, in place
    cut: Callable[..., None]

    def describe(self) -> str:
        return (f"{self.name} ({self.paper}): {self.units}; {self.criterion}; {self.schedule}; "
                f"{'recovery after pruning' if self.fine_tunes else 'no fine-tuning'}")


def statistics(model: nn.Module, batches, loss_fn, gradients: bool = False):
    """Calibration statistics of ``model`` as it is (the same hooks as the cascade's)."""
    return collect(model, batches, loss_fn=loss_fn, gradients=gradients)


def lowest_heads(s: Structure, scores: dict[int, torch.Tensor], k: dict[int, int]) -> PruningPlan:
    """The ``k[layer]`` lowest-scored heads of every layer (made GQA-valid by ``repair_heads``)."""
    picked = {l.orig_index: set(sorted(range(len(l.heads)), key=lambda p: (float(scores[l.orig_index][p]), p))
                                [: k[l.orig_index]]) for l in s.layers}
    return repair_heads(s, picked, scores)


def uniform_plan(model: nn.Module, head_scores: dict, channel_scores: dict, target: int,
                 max_fraction: float = 0.97) -> PruningPlan:
    """Every layer loses the same fraction of its heads and of its FFN channels, its lowest-scored first.

    The fraction p is the share of prunable (head + channel) parameters the target asks for; each
    layer drops floor(p * heads) heads (at least one stays), then channels, the same share in every
    layer (``allocation="uniform"``), close the gap to ``target`` within one channel."""
    s = resolve(model)
    need = block_params(model) - target
    if need <= 0:
        return PruningPlan()
    c = unit_costs(s)
    prunable = sum(len(l.heads) * c.q_head + len(l.kv_heads) * c.kv_head + len(l.channels) * c.channel
                   for l in s.layers)
    p = need / prunable
    k = {l.orig_index: min(len(l.heads) - 1, math.floor(p * len(l.heads))) for l in s.layers}
    while True:  # heads never overshoot: channels are the fine-grained remainder
        heads = lowest_heads(s, head_scores, k)
        if predict_block_params(model, heads) >= target or not any(k.values()):
            break
        k = {i: max(0, n - 1) for i, n in k.items()}
    gap = predict_block_params(model, heads) - target
    return heads | select("channels", s, channel_scores, gap, max_fraction=max_fraction, allocation="uniform")
