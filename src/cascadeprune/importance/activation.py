"""Activation-based criteria on the inputs of the output/down projections (what a unit emits).

- ``activation`` (Minitron): RMS over tokens of the unit's activation (a head's slice of the
  attention output, a channel's input to the down projection).
- ``wanda_sp`` (structured Wanda): sum over the unit's input features j and output rows i of
  |W_ij| * ||X_j||_2.
- ``fluctuation`` (FLAP): sum over the unit's features of Var(X_j) * ||W_:,j||_2^2 — how much
  output variance the unit carries (a constant part could be folded into a bias).
"""

from __future__ import annotations

import torch

from cascadeprune.importance.registry import register
from cascadeprune.importance.units import out_in


def _per_unit(values: torch.Tensor, width: int) -> torch.Tensor:
    return values.reshape(-1, width).sum(dim=1)


def _layers(stats, kind: str):
    s = stats.structure
    for i, l in enumerate(s.layers):
        if kind == "heads":
            yield l, stats.o_in[i], out_in(l.o.weight.detach(), s).double(), s.dims.head_dim
        else:
            yield l, stats.down_in[i], out_in(l.down.weight.detach(), s).double(), 1


def _activation(stats, kind):
    return {l.orig_index: (_per_unit(f.sumsq, w) / max(f.count, 1)).sqrt() for l, f, _, w in _layers(stats, kind)}


def _wanda(stats, kind):
    return {l.orig_index: _per_unit(W.abs().sum(0) * f.l2, w) for l, f, W, w in _layers(stats, kind)}


def _fluct(stats, kind):
    return {l.orig_index: _per_unit(f.var * W.pow(2).sum(0), w) for l, f, W, w in _layers(stats, kind)}


for _kind in ("heads", "channels"):
    register(_kind, "activation")(lambda stats, mode="grouped", _k=_kind, **_: _activation(stats, _k))
    register(_kind, "wanda_sp")(lambda stats, mode="grouped", _k=_kind, **_: _wanda(stats, _k))
    register(_kind, "fluctuation")(lambda stats, mode="grouped", _k=_kind, **_: _fluct(stats, _k))
