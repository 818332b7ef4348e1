"""Layer criteria from how much a block changes its input (one pass of statistics).

``lcr`` (the paper): E[||h_out - h_in||_2 / ||h_in||_2]. ``block_influence`` (ShortGPT):
E[1 - cos(h_in, h_out)]. ``angular``: E[arccos(cos(h_in, h_out)) / pi]. ``cka``: 1 - linear CKA between
the inputs and outputs of a fixed token sample. A block that barely changes its input is the cheapest to remove. The
first and last layers are protected (score +inf), as in the paper.
"""

from __future__ import annotations

import math

from cascadeprune.importance.registry import register


def protect_layer_ends(stats, values: list[float], protect_ends: bool) -> dict[int, float]:
    """Layer scores keyed by original index; with ``protect_ends``, the first and last layers score +inf."""
    layers = stats.structure.layers
    out = {l.orig_index: v for l, v in zip(layers, values)}
    if protect_ends and len(layers) > 2:
        out[layers[0].orig_index] = out[layers[-1].orig_index] = math.inf
    return out


@register("layers", "lcr", options=("protect_ends",))
def lcr(stats, protect_ends: bool = True, **_) -> dict[int, float]:
    return protect_layer_ends(stats, [c.lcr for c in stats.layers], protect_ends)


@register("layers", "block_influence", options=("protect_ends",))
def block_influence(stats, protect_ends: bool = True, **_) -> dict[int, float]:
    return protect_layer_ends(stats, [c.block_influence for c in stats.layers], protect_ends)


@register("layers", "ablation", options=("protect_ends",), ablation=True)
def ablation(stats, protect_ends: bool = True, **_) -> dict[int, float]:
    """Measured calibration-loss increase when the layer is skipped (needs ``stats.ablation``)."""
    if not getattr(stats, "ablation", None):
        raise ValueError("the ablation criterion needs statistics from calib.collect_ablation()")
    return protect_layer_ends(stats, [stats.ablation[l.orig_index] for l in stats.structure.layers], protect_ends)


@register("layers", "angular", options=("protect_ends",))
def angular(stats, protect_ends: bool = True, **_) -> dict[int, float]:
    """Mean angular distance arccos(cos(h_in, h_out)) / pi between a layer's input and output, over tokens
    ("The Unreasonable Ineffectiveness of the Deeper Layers", Gromov et al. 2024, for one layer)."""
    return protect_layer_ends(stats, [c.angular for c in stats.layers], protect_ends)


@register("layers", "cka", options=("protect_ends",))
def cka(stats, protect_ends: bool = True, **_) -> dict[int, float]:
    """1 - linear CKA between a layer's input and output on the calibration token sample (``calib.CKA_TOKENS``),
    each token scaled to unit norm (so the few massive-norm tokens of pretrained LMs do not decide it alone):
    0 for a layer that only rotates or rescales its input, near 1 for one that scrambles it."""
    return protect_layer_ends(stats, [c.cka_distance for c in stats.layers], protect_ends)
