"""``taylor``: first-order Taylor estimate of the loss change when a unit is removed, as in
LLM-Pruner: |sum over the unit's weights of w * dL/dw| (gradients from ``collect(gradients=True)``)."""

from __future__ import annotations

import torch

from cascadeprune.importance.registry import register
from cascadeprune.importance.units import channel_parts, head_parts, weight


def _taylor(w_parts, g_parts) -> torch.Tensor:
    return sum(scale * (w * g).sum(dim=1).double() for (w, scale), (g, _) in zip(w_parts, g_parts)).abs()


def _grad_getter(stats):
    def get(m):
        g = stats.grad(m)
        if g is None:
            raise ValueError("the taylor criterion needs gradients: collect(..., gradients=True)")
        return g

    return get


@register("heads", "taylor", naive=True, gradients=True)
def taylor_heads(stats, mode: str = "grouped", **_) -> dict[int, torch.Tensor]:
    s, g = stats.structure, _grad_getter(stats)
    return {l.orig_index: _taylor(head_parts(l, s, weight, mode), head_parts(l, s, g, mode)) for l in s.layers}


@register("channels", "taylor", naive=True, gradients=True)
def taylor_channels(stats, mode: str = "grouped", **_) -> dict[int, torch.Tensor]:
    s, g = stats.structure, _grad_getter(stats)
    return {l.orig_index: _taylor(channel_parts(l, s, weight, mode), channel_parts(l, s, g, mode)) for l in s.layers}
