"""Calibration statistics: one pass of hooks over calibration batches, running sums only.

What is gathered, per CURRENT layer of the model (original indices are in the structure):

- ``layer_change``: sum over tokens of ||h_out - h_in|| / ||h_in|| (for LCR), of
  1 - cos(h_in, h_out) (for ShortGPT's block influence), of arccos(cos(h_in, h_out)) / pi (angular
  distance), plus a fixed-size sample of (h_in, h_out) token pairs for linear CKA on unit-norm tokens (a reservoir of
  ``CKA_TOKENS`` tokens, the same tokens for every layer, drawn by a seeded generator: deterministic);
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

import math
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


CKA_TOKENS = 512  # tokens per layer kept for linear CKA: 2 x 512 x hidden floats per layer, whatever the data size


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA (Kornblith et al. 2019) between token representations ``x`` (n, d1) and ``y`` (n, d2):
    ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F) on column-centred copies. 1 for equal inputs; invariant
    to orthogonal transforms and isotropic scaling of either side. Two constant sides count as equal (1).

    Example::

        linear_cka(h, h @ q)  # 1.0 for an orthogonal q
    """
    x, y = x.double(), y.double()
    x, y = x - x.mean(0), y - y.mean(0)
    num = (y.T @ x).pow(2).sum()
    den = (x.T @ x).norm() * (y.T @ y).norm()
    if float(den) <= 1e-300:  # a constant side: equal if both are constant
        return 1.0 if float(x.norm()) <= 1e-150 and float(y.norm()) <= 1e-150 else 0.0
    return float((num / den).clamp(0.0, 1.0))


def unit_rows(x: torch.Tensor) -> torch.Tensor:
    """Each row (token) scaled to unit L2 norm (zero rows stay zero)."""
    x = x.double()
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


class TokenSampler:
    """Reservoir sampling of ``k`` tokens from the stream of calibration tokens, seeded: every layer asks
    for the same batch and gets the same (slot, row) decisions, so all layers keep the same tokens."""

    def __init__(self, k: int = CKA_TOKENS, seed: int = 0):
        self.k, self.seen, self.gen = k, 0, torch.Generator().manual_seed(seed)
        self.batch, self.decision = -1, None

    def decide(self, batch: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(slots, rows): row ``rows[i]`` of this batch's tokens goes to reservoir slot ``slots[i]``."""
        if batch != self.batch:
            t = torch.arange(self.seen, self.seen + n, dtype=torch.float64)
            r = torch.floor(torch.rand(n, generator=self.gen, dtype=torch.float64) * (t + 1)).long()
            slot = torch.where(t < self.k, t.long(), r)
            rows = torch.nonzero(slot < self.k).flatten()
            slots = slot[rows]
            # a later token replacing the same slot wins: keep the last row per slot
            last = {int(s): int(i) for s, i in zip(slots, rows)}
            slots = torch.tensor(sorted(last), dtype=torch.long)
            rows = torch.tensor([last[s] for s in sorted(last)], dtype=torch.long)
            self.batch, self.seen, self.decision = batch, self.seen + n, (slots, rows)
        return self.decision


@dataclass
class LayerChange:
    ratio_sum: float = 0.0  # sum of ||h_out - h_in|| / ||h_in||
    influence_sum: float = 0.0  # sum of 1 - cos(h_in, h_out)
    angular_sum: float = 0.0  # sum of arccos(cos(h_in, h_out)) / pi
    count: int = 0
    sample_in: torch.Tensor | None = None  # (<= CKA_TOKENS, hidden) reservoir of inputs, float32
    sample_out: torch.Tensor | None = None  # the same tokens' outputs
    filled: int = 0  # reservoir slots in use

    def add(self, h_in: torch.Tensor, h_out: torch.Tensor, sampler: TokenSampler | None = None,
            batch: int = 0) -> None:
        """Add one batch of tokens (rows of ``h_in`` / ``h_out``, float64)."""
        norm_in = h_in.norm(dim=-1).clamp_min(1e-12)
        self.ratio_sum += ((h_out - h_in).norm(dim=-1) / norm_in).sum().item()
        cos = nn.functional.cosine_similarity(h_in, h_out, dim=-1)
        self.influence_sum += (1 - cos).sum().item()
        self.angular_sum += (torch.arccos(cos.clamp(-1.0, 1.0)) / math.pi).sum().item()
        self.count += h_in.shape[0]
        if sampler is None:
            return
        slots, rows = sampler.decide(batch, h_in.shape[0])
        if self.sample_in is None:
            self.sample_in = torch.zeros(sampler.k, h_in.shape[-1], dtype=torch.float32)
            self.sample_out = torch.zeros(sampler.k, h_out.shape[-1], dtype=torch.float32)
        if len(slots):
            self.sample_in[slots] = h_in[rows].float()
            self.sample_out[slots] = h_out[rows].float()
            self.filled = max(self.filled, int(slots.max()) + 1)

    @property
    def lcr(self) -> float:
        return self.ratio_sum / max(self.count, 1)

    @property
    def block_influence(self) -> float:
        return self.influence_sum / max(self.count, 1)

    @property
    def angular(self) -> float:
        """Mean angular distance arccos(cos(h_in, h_out)) / pi over tokens, in [0, 1] (Gromov et al. 2024)."""
        return self.angular_sum / max(self.count, 1)

    def _sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.sample_in is None or self.filled < 2:
            raise ValueError("cka needs sampled tokens: collect(..., cka_tokens > 0) over at least two tokens")
        return self.sample_in[: self.filled], self.sample_out[: self.filled]

    @property
    def cka_distance(self) -> float:
        """1 - linear CKA between the sampled tokens' inputs and outputs, each token scaled to unit norm first
        (0: the layer only rotates / rescales its input). Why unit norm: in pretrained LMs a few tokens (the
        attention sinks, e.g. the first of each window) carry norms orders of magnitude above the rest in the
        middle layers, and plain linear CKA then measures those few tokens alone (:attr:`cka_distance_raw` ~ 0
        for every such layer). Unit rows keep CKA's invariance to orthogonal transforms and isotropic scaling."""
        x, y = self._sample()
        return 1.0 - linear_cka(unit_rows(x), unit_rows(y))

    @property
    def cka_distance_raw(self) -> float:
        """1 - plain linear CKA on the sampled tokens as they are (reported by ``inspect --layers``)."""
        x, y = self._sample()
        return 1.0 - linear_cka(x, y)


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
            forward_fn: Callable[[nn.Module, object], object] | None = None, gradients: bool = False,
            cka_tokens: int = CKA_TOKENS) -> Statistics:
    """Run the calibration batches once and return the statistics.

    ``loss_fn(model, batch) -> scalar`` is needed for gradients (and records the mean loss);
    otherwise ``forward_fn(model, batch)`` (default: ``model(batch)``) just runs the model.
    ``cka_tokens``: tokens sampled per layer for linear CKA (0: none, and the ``cka`` criterion is unavailable)."""
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
    sampler = TokenSampler(cka_tokens) if cka_tokens > 0 else None

    def on_layer(i):
        def hook(module, args, kwargs, output):
            h_in, h_out = _hidden_in(args, kwargs).detach(), _hidden_out(output).detach()
            h_in, h_out = h_in.reshape(-1, h_in.shape[-1]).double(), h_out.reshape(-1, h_out.shape[-1]).double()
            stats.layers[i].add(h_in, h_out, sampler, stats.batches)

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
