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

from cascadeprune.accounting import Shape
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

    def plan_shape(self, shape: Shape, target: int, max_fraction: float = 0.97) -> PruningPlan:
        """What the cut removes, predicted on a Shape with placeholder scores (the planner's view; exact for
        whole layers and MHA heads + channels, within a unit for GQA heads and FLAP's adaptive mix)."""
        if self.units == "whole layers":
            return whole_layers_plan(shape, target)
        zeros = lambda n: torch.zeros(n, dtype=torch.float64)  # noqa: E731
        return uniform_plan(shape, {l.orig_index: zeros(len(l.heads)) for l in shape.layers},
                            {l.orig_index: zeros(len(l.channels)) for l in shape.layers}, target, max_fraction)

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
    s = Shape.of(model)  # a model, or a Shape when the planner predicts the cut (placeholder scores)
    need = s.block_params() - target
    if need <= 0:
        return PruningPlan()
    c = s.costs
    prunable = sum(len(l.heads) * c.q_head + len(l.kv_heads) * c.kv_head + len(l.channels) * c.channel
                   for l in s.layers)
    p = need / prunable
    k = {l.orig_index: min(len(l.heads) - 1, math.floor(p * len(l.heads))) for l in s.layers}
    while True:  # heads never overshoot: channels are the fine-grained remainder
        heads = lowest_heads(s, head_scores, k)
        if s.after(heads).block_params() >= target or not any(k.values()):
            break
        k = {i: max(0, n - 1) for i, n in k.items()}
    gap = s.after(heads).block_params() - target
    return heads | select("channels", s, channel_scores, gap, max_fraction=max_fraction, allocation="uniform")


def whole_layers_plan(shape: Shape, target: int) -> PruningPlan:
    """Remove the number of whole layers (any; at least one stays) whose count lands nearest ``target``."""
    sizes = sorted((shape.layer_params(l), l.orig_index) for l in shape.layers)
    now = shape.block_params()
    best, gone = (abs(now - target), 0), 0
    for k, (n, _) in enumerate(sizes[:-1], start=1):
        gone += n
        best = min(best, (abs(now - gone - target), k))
    return PruningPlan(layers={i for _, i in sizes[: best[1]]})
