"""Keep a subset of a projection's input or output features, in place.

Works for ``nn.Linear`` (weight is out x in) and GPT-2's ``Conv1D`` (weight is in x out), and on
the ``meta`` device (so a pruned skeleton can be built without allocating the dense weights).
"""

from __future__ import annotations

import torch
from torch import nn


def _index(idx, device) -> torch.Tensor:
    return torch.as_tensor(list(idx), dtype=torch.long, device=device)


def _replace(module: nn.Module, name: str, value: torch.Tensor) -> None:
    old = getattr(module, name)
    setattr(module, name, nn.Parameter(value.contiguous(), requires_grad=old.requires_grad))


@torch.no_grad()
def keep_outputs(module: nn.Module, idx, layout: str) -> None:
    """Keep output features ``idx`` (in order) of a Linear/Conv1D, with its bias."""
    w = module.weight
    dim = 1 if layout == "conv1d" else 0
    i = _index(idx, w.device)
    _replace(module, "weight", w.index_select(dim, i))
    if getattr(module, "bias", None) is not None:
        _replace(module, "bias", module.bias.index_select(0, i))
    if layout == "conv1d":
        module.nf = len(i)
    else:
        module.out_features = len(i)


@torch.no_grad()
def keep_inputs(module: nn.Module, idx, layout: str) -> None:
    """Keep input features ``idx`` of a Linear/Conv1D; the bias is unchanged."""
    w = module.weight
    dim = 0 if layout == "conv1d" else 1
    _replace(module, "weight", w.index_select(dim, _index(idx, w.device)))
    if layout == "conv1d":
        module.nx = len(idx)
    else:
        module.in_features = len(idx)


@torch.no_grad()
def keep_rows(module: nn.Module, idx) -> None:
    """Keep rows ``idx`` (first dimension) of every parameter of a norm shaped (heads, head_dim)."""
    for name, p in list(module.named_parameters(recurse=False)):
        _replace(module, name, p.index_select(0, _index(idx, p.device)))
