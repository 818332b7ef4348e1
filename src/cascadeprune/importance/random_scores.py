"""``random``: seeded uniform scores, the floor every criterion must beat."""

from __future__ import annotations

import torch

from cascadeprune.importance.layer_change import protect_layer_ends
from cascadeprune.importance.registry import register


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@register("layers", "random", options=("protect_ends",), weight_only=True)
def random_layers(stats, seed: int = 0, protect_ends: bool = True, **_) -> dict[int, float]:
    g = _gen(seed)  # the ends are protected as for every layer criterion, so random is a fair floor
    return protect_layer_ends(stats, [float(torch.rand(1, generator=g)) for _ in stats.structure.layers],
                              protect_ends)


@register("heads", "random", weight_only=True)
def random_heads(stats, seed: int = 0, mode: str = "grouped", **_) -> dict[int, torch.Tensor]:
    g = _gen(seed)
    return {l.orig_index: torch.rand(len(l.heads), generator=g, dtype=torch.float64) for l in stats.structure.layers}


@register("channels", "random", weight_only=True)
def random_channels(stats, seed: int = 0, mode: str = "grouped", **_) -> dict[int, torch.Tensor]:
    g = _gen(seed)
    return {l.orig_index: torch.rand(len(l.channels), generator=g, dtype=torch.float64) for l in stats.structure.layers}
