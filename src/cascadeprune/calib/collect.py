"""Calibration statistics: one pass of hooks over calibration batches, running sums only.

What is gathered, per CURRENT layer of the model (original indices are in the structure):

- ``layer_change``: sum over tokens of ||h_out - h_in|| / ||h_in|| (for LCR) and of
  1 - cos(h_in, h_out) (for ShortGPT's block influence);
- ``o_in`` / ``down_in``: per input feature of the attention output projection and of the FFN
  down projection, the sum of x, of x^2 and of |x| over tokens (per-head and per-channel
  activation norms, means and variances follow);
- optionally gradients: the gradient of the summed calibration loss w.r.t. every projection
  weight (for first-order Taylor scores), accumulated in place.

Memory is bounded by the model size, never by the number of calibration tokens.

Example::

    stats = collect(clf, batches, loss_fn=lambda m, b: F.cross_entropy(m(b[0]), b[1]), gradients=True)
    stats.layers[0].lcr
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
from torch import nn

from cascadeprune.arch.resolve import Structure, resolve


@dataclass
class FeatureStats:
    """Running sums over tokens for each input feature of one projection."""

    sum: torch.Tensor
    sumsq: torch.Tensor
    sumabs: torch.Tensor
    count: int = 0

    @staticmethod
    def zeros(n: int) -> "FeatureStats":
        z = lambda: torch.zeros(n, dtype=torch.float64)  # noqa: E731
        return FeatureStats(z(), z(), z())

    def add(self, x: torch.Tensor) -> None:
        x = x.detach().reshape(-1, x.shape[-1]).to(torch.float64)
        self.sum += x.sum(0)
        self.sumsq += x.pow(2).sum(0)
        self.sumabs += x.abs().sum(0)
        self.count += x.shape[0]

    @property
    def mean(self) -> torch.Tensor:
        return self.sum / max(self.count, 1)

    @property
    def var(self) -> torch.Tensor:
        return (self.sumsq / max(self.count, 1) - self.mean.pow(2)).clamp_min(0)

    @property
    def l2(self) -> torch.Tensor:
        """sqrt(sum over tokens of x^2): Wanda's ||X_j||_2."""
        return self.sumsq.sqrt()


@dataclass
class LayerChange:
    ratio_sum: float = 0.0  # sum of ||h_out - h_in|| / ||h_in||
    influence_sum: float = 0.0  # sum of 1 - cos(h_in, h_out)
    count: int = 0

    @property
    def lcr(self) -> float:
        return self.ratio_sum / max(self.count, 1)

    @property
    def block_influence(self) -> float:
        return self.influence_sum / max(self.count, 1)


@dataclass
class Statistics:
    structure: Structure
    layers: list[LayerChange]
    o_in: list[FeatureStats]
    down_in: list[FeatureStats]
    grads: dict[int, torch.Tensor] = field(default_factory=dict)  # id(weight) -> accumulated gradient
    ablation: dict[int, float] = field(default_factory=dict)  # orig layer -> loss increase when skipped
    loss_sum: float = 0.0
    batches: int = 0

    def grad(self, module: nn.Module | None) -> torch.Tensor | None:
        return None if module is None else self.grads.get(id(module.weight))


def _hidden_in(args, kwargs) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


def _hidden_out(output) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output[0]


def collect(model: nn.Module, batches: Iterable, loss_fn: Callable[[nn.Module, object], torch.Tensor] | None = None,
            forward_fn: Callable[[nn.Module, object], object] | None = None, gradients: bool = False) -> Statistics:
    """Run the calibration batches once and return the statistics.

    ``loss_fn(model, batch) -> scalar`` is needed for gradients (and records the mean loss);
    otherwise ``forward_fn(model, batch)`` (default: ``model(batch)``) just runs the model."""
    if gradients and loss_fn is None:
        raise ValueError("gradients need a loss_fn(model, batch)")
    s = resolve(model)
    stats = Statistics(
        s,
        [LayerChange() for _ in s.layers],
        [FeatureStats.zeros(l.o.weight.shape[0 if s.family.weight_layout == "conv1d" else 1]) for l in s.layers],
        [FeatureStats.zeros(l.down.weight.shape[0 if s.family.weight_layout == "conv1d" else 1]) for l in s.layers],
    )
    handles = []

    def on_layer(i):
        def hook(module, args, kwargs, output):
            h_in, h_out = _hidden_in(args, kwargs).detach(), _hidden_out(output).detach()
            h_in, h_out = h_in.reshape(-1, h_in.shape[-1]).double(), h_out.reshape(-1, h_out.shape[-1]).double()
            norm_in = h_in.norm(dim=-1).clamp_min(1e-12)
            stats.layers[i].ratio_sum += ((h_out - h_in).norm(dim=-1) / norm_in).sum().item()
            cos = nn.functional.cosine_similarity(h_in, h_out, dim=-1)
            stats.layers[i].influence_sum += (1 - cos).sum().item()
            stats.layers[i].count += h_in.shape[0]

        return hook

    def on_input(store: FeatureStats):
        return lambda module, args: store.add(args[0])

    weights = []
    for i, l in enumerate(s.layers):
        handles.append(l.module.register_forward_hook(on_layer(i), with_kwargs=True))
        handles.append(l.o.register_forward_pre_hook(on_input(stats.o_in[i])))
        handles.append(l.down.register_forward_pre_hook(on_input(stats.down_in[i])))
        weights += [m.weight for m in (l.q, l.k, l.v, l.qkv, l.o, l.up, l.gate, l.gate_up, l.down) if m is not None]
    was_training = model.training
    model.eval()  # statistics of the deployed computation: no dropout
    saved_flags = [w.requires_grad for w in weights]
    try:
        if gradients:
            for w in weights:
                w.requires_grad_(True)
                stats.grads[id(w)] = torch.zeros_like(w, dtype=torch.float32)
        for batch in batches:
            with torch.set_grad_enabled(gradients):
                if loss_fn is not None:
                    loss = loss_fn(model, batch)
                    stats.loss_sum += float(loss.detach())
                    if gradients:
                        grads = torch.autograd.grad(loss, weights, allow_unused=True)
                        for w, g in zip(weights, grads):
                            if g is not None:
                                stats.grads[id(w)] += g.float()
                else:
                    (forward_fn or (lambda m, b: m(b)))(model, batch)
            stats.batches += 1
    finally:
        for h in handles:
            h.remove()
        for w, flag in zip(weights, saved_flags):
            w.requires_grad_(flag)
        model.train(was_training)
    return stats


@torch.no_grad()
def collect_ablation(model: nn.Module, batches: list, loss_fn: Callable[[nn.Module, object], torch.Tensor],
                     stats: Statistics) -> Statistics:
    """Add ``stats.ablation``: calibration-loss increase when each layer is skipped (one pass per layer)."""
    from cascadeprune.plan import PruningPlan
    from cascadeprune.surgery.masking import mask_plan

    was_training = model.training
    model.eval()
    base = sum(float(loss_fn(model, b)) for b in batches)
    stats.ablation = {}
    for l in stats.structure.layers:
        with mask_plan(model, PruningPlan(layers={l.orig_index})):
            stats.ablation[l.orig_index] = (sum(float(loss_fn(model, b)) for b in batches) - base) / len(batches)
    model.train(was_training)
    return stats
