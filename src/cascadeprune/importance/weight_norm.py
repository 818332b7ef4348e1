"""``l1``: the L1 norm of a unit's weights (the paper's static criterion)."""

from __future__ import annotations

import torch

from cascadeprune.importance.registry import register
from cascadeprune.importance.units import channel_parts, head_parts, weight


def _l1(parts) -> torch.Tensor:
    return sum(scale * t.abs().sum(dim=1).double() for t, scale in parts)


@register("heads", "l1", naive=True, weight_only=True)
def l1_heads(stats, mode: str = "grouped", **_) -> dict[int, torch.Tensor]:
    s = stats.structure
    return {l.orig_index: _l1(head_parts(l, s, weight, mode)) for l in s.layers}


@register("channels", "l1", naive=True, weight_only=True)
def l1_channels(stats, mode: str = "grouped", **_) -> dict[int, torch.Tensor]:
    s = stats.structure
    return {l.orig_index: _l1(channel_parts(l, s, weight, mode)) for l in s.layers}
