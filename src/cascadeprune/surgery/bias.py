"""Bias compensation (FLAP): fold the mean contribution of removed units into the output bias.

A removed head or FFN channel fed the attention output projection (or the FFN down projection)
with an input whose calibration mean is m_j. Removing it takes away W[:, j] * m_j on average;
adding that vector to the projection's bias keeps the projection's MEAN output unchanged on the
calibration data (only the fluctuation around the mean is lost). Call this BEFORE ``apply_plan``
(positions are looked up in the model as it is now).

A projection without a bias (Llama-family o_proj/down_proj) is refused: a bias created here would
not be rebuilt by a stock loader or by the model's own config, so the saved model would silently
lose it.

Example::

    compensate_bias(model, plan, o_mean={0: tensor[...]}, down_mean={0: tensor[...]})
    apply_plan(model, plan, inplace=True)
"""

from __future__ import annotations

import torch
from torch import nn

from cascadeprune.arch.resolve import resolve
from cascadeprune.errors import CascadePruneError
from cascadeprune.plan import PruningPlan


def _columns(proj: nn.Module, idx: list[int], layout: str) -> torch.Tensor:
    """The weight columns (out, len(idx)) that read input features ``idx``, in float64."""
    w = proj.weight.detach().double()
    i = torch.as_tensor(idx, dtype=torch.long)
    return w.index_select(0, i).t() if layout == "conv1d" else w.index_select(1, i)


@torch.no_grad()
def compensate_bias(model: nn.Module, plan: PruningPlan, o_mean: dict[int, torch.Tensor],
                    down_mean: dict[int, torch.Tensor]) -> None:
    """Add the calibration-mean output of the units ``plan`` removes to the o/down projection biases.

    ``o_mean`` / ``down_mean``: per ORIGINAL layer index, the mean over calibration tokens of each input
    feature of the attention output / FFN down projection (the model's current features). Nothing is
    changed when a projection that needs compensating has no bias (CascadePruneError)."""
    s = resolve(model)
    hd, layout = s.dims.head_dim, s.family.weight_layout
    work = []  # (projection, input features removed, their means, what)
    for l in s.layers:
        if l.orig_index in plan.layers:
            continue
        gone_heads = [p for p, h in enumerate(l.heads) if h in plan.heads.get(l.orig_index, ())]
        if gone_heads:
            work.append((l.o, [p * hd + j for p in gone_heads for j in range(hd)], o_mean[l.orig_index],
                         "the attention output projection"))
        gone_ch = [p for p, c in enumerate(l.channels) if c in plan.channels.get(l.orig_index, ())]
        if gone_ch:
            work.append((l.down, gone_ch, down_mean[l.orig_index], "the FFN down projection"))
    for proj, _, _, what in work:  # refuse before touching anything
        if getattr(proj, "bias", None) is None:
            raise CascadePruneError(
                f"bias compensation needs a bias on {what}, and this {s.family.name} model has none (creating one "
                "would be lost by a stock loader); prune this model with a method without compensation")
    for proj, idx, mean, _ in work:
        i = torch.as_tensor(idx, dtype=torch.long)
        proj.bias += (_columns(proj, idx, layout) @ mean.double()[i]).to(proj.bias.dtype)
