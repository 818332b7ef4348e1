"""The cheap, gradient-only estimate of the SIA, beside the exact removals of :mod:`.measure`.

Put a multiplicative mask ``m_i = 1`` on every unit's output (a head's slice of the attention output
projection's input, a channel's input to the FFN down projection; removing the unit is ``m_i = 0``)
and take ``g_i,n = ∂L_n/∂m_i`` for each calibration window ``n`` (one backward pass per batch, the
mask carries a batch axis). To second order, with the Fisher approximation of the Hessian, the cost
of removing a set ``S`` is ``½ Σ_n (Σ_{i∈S} g_i,n)²`` (*joint*) and, if the units were independent,
``½ Σ_{i∈S} Σ_n g_i,n²`` (*additive*). So, with no removal at all:

- ``A_grad(S) = Σ_n (Σ_{i∈S} g_i,n)² / Σ_{i∈S} Σ_n g_i,n²``: the estimate of the set additivity A;
- ``I_grad(i, j) = 2 Σ_n g_i,n g_j,n / (Σ_n g_i,n² + Σ_n g_j,n²)`` (in [−1, 1]): the estimate of a
  pair's normalised interaction; two units whose outputs cancel give −1;
- ``½ Σ_n g_i,n²``: the estimate of a single removal's cost δi.

It covers every unit (a set's estimate needs no sampling) for the price of one backward pass, but it is
an approximation around the dense model: it cannot see what a large removal does beyond second order.
:func:`cascadeprune.sia.measure.measure` reports it beside the measured values, with their agreement
(Kendall τ over singles and over pairs, and whether both grade each set's A alike).
Layers have no such mask here (``granularity="layers"`` is refused).

Example::

    g = mask_gradients(model, task, batches, "heads")   # {(layer, head): tensor of per-window gradients}
    A_grad(g, crit_set), I_grad(g, a, b)
"""

from __future__ import annotations

import torch
from torch import nn

from cascadeprune.arch.resolve import resolve
from cascadeprune.errors import CascadePruneError

Unit = tuple[int, int]


def mask_gradients(model: nn.Module, task, batches: list, granularity: str) -> dict[Unit, torch.Tensor]:
    """``{unit: g}`` with ``g[n] = ∂L/∂m_unit`` for calibration window ``n`` (batches in order; the loss of a
    batch as ``task.loss`` computes it). The model is left unchanged."""
    if granularity not in ("heads", "channels"):
        raise CascadePruneError(f"the gradient estimate is defined for heads and channels, not {granularity!r}")
    s = resolve(model)
    masks: dict[int, torch.Tensor] = {}

    def hook(p: int):
        def pre(module, args):
            x = args[0]
            m = torch.ones(x.shape[0], *([1] * (x.dim() - 2)), x.shape[-1], dtype=x.dtype, requires_grad=True)
            masks[p] = m
            return (x * m, *args[1:])
        return pre

    handles = [(l.o if granularity == "heads" else l.down).register_forward_pre_hook(hook(p))
               for p, l in enumerate(s.layers)]
    per_layer: list[list[torch.Tensor]] = [[] for _ in s.layers]
    was_training = model.training
    model.eval()
    try:
        for b in batches:
            masks.clear()
            with torch.enable_grad():
                loss = task.loss(model, b)
                order = sorted(masks)
                grads = torch.autograd.grad(loss, [masks[p] for p in order])
            for p, g in zip(order, grads):
                per_layer[p].append(g.detach().reshape(g.shape[0], -1).to(torch.float64))  # (windows, features)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    out: dict[Unit, torch.Tensor] = {}
    for p, l in enumerate(s.layers):
        g = torch.cat(per_layer[p], 0)
        if granularity == "heads":
            g = g.reshape(g.shape[0], len(l.heads), -1).sum(-1)  # a head = its head_dim slice
            ids = l.heads
        else:
            ids = l.channels
        for k, i in enumerate(ids):
            out[(l.orig_index, i)] = g[:, k]
    return out


def single(g: dict[Unit, torch.Tensor], u: Unit) -> float:
    """Estimated cost of removing ``u`` alone (½ Σ_n g²)."""
    return 0.5 * float(g[u].pow(2).sum())


def I_grad(g: dict[Unit, torch.Tensor], a: Unit, b: Unit) -> float | None:
    den = float(g[a].pow(2).sum() + g[b].pow(2).sum())
    return 2 * float((g[a] * g[b]).sum()) / den if den > 0 else None


def A_grad(g: dict[Unit, torch.Tensor], units) -> float | None:
    units = list(units)
    if not units:
        return None
    G = torch.stack([g[u] for u in units])  # (units, windows)
    additive = float(G.pow(2).sum())
    return float(G.sum(0).pow(2).sum()) / additive if additive > 0 else None
