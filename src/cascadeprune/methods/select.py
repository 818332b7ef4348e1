"""Turn importance scores into a valid PruningPlan that removes about a given number of
block parameters. Lowest scores go first; everything is deterministic (ties by index).

- layers: whole blocks, lowest score first, never beyond the budget (protected layers score
  +inf and never go);
- heads, ``grouped`` mode (default): candidate units per layer are "one query head from every
  kept KV group" (the lowest-scored one in each) or "one whole KV group" (with its KV head);
  both keep the GQA rule. Units are ranked by mean head score. For MHA every head is its own group.
- heads, ``naive`` mode: heads ranked one by one across the model, then :func:`repair_heads`
  makes the choice valid (per-component scoring, for studying the GQA collapse);
- channels: ranked across layers, at most ``max_fraction`` of a layer's channels go. With
  ``allocation="uniform"`` every layer loses the same share of its channels (within one), its
  lowest-scored first: each score is replaced by its rank inside its layer before the global
  ranking, so scores of different scales in different layers no longer decide where the cut goes.

Heads and channels scored +inf (those of layers a joint cut already removes) never go: choosing
them would save nothing, so the selection stops short of the budget instead.

Example::

    plan = select("heads", structure, scores, params_to_remove=2_000_000)
"""

from __future__ import annotations

import logging
import math

import torch

from cascadeprune.accounting import Shape, costs_of, layer_params_of
from cascadeprune.arch.resolve import LayerRefs, Structure
from cascadeprune.plan import PruningPlan


log = logging.getLogger(__name__)

ALLOCATIONS = ("global", "uniform")


def select(granularity: str, s: Structure | Shape, scores: dict, params_to_remove: int, mode: str = "grouped",
           max_fraction: float = 0.9, allocation: str = "global") -> PruningPlan:
    if params_to_remove <= 0:
        return PruningPlan()
    if granularity == "layers":
        return _layers(s, scores, params_to_remove)
    if granularity == "heads" and s.family.heads_refused:  # e.g. OLMo-2: surgery would refuse any head
        log.warning("%s: no heads selected: %s", s.family.name, s.family.heads_refused)
        return PruningPlan()
    if granularity == "heads":
        return _heads_naive(s, scores, params_to_remove) if mode == "naive" else _heads(s, scores, params_to_remove)
    if granularity == "channels":
        if allocation not in ALLOCATIONS:
            raise ValueError(f"allocation must be one of {ALLOCATIONS}, got {allocation!r}")
        if allocation == "uniform":
            scores = per_layer_ranks(scores)
        return _channels(s, scores, params_to_remove, max_fraction)
    raise ValueError(f"unknown granularity {granularity!r}")


def _layers(s: Structure, scores: dict[int, float], budget: int) -> PruningPlan:
    order = sorted((v, i) for i, v in scores.items() if math.isfinite(v))
    params = {l.orig_index: layer_params_of(s, l) for l in s.layers}
    removed, total = set(), 0
    for _, i in order:  # whole layers never overshoot the budget: finer stages take the rest
        if total + params[i] > budget or len(removed) >= len(s.layers) - 1:
            break
        removed.add(i)
        total += params[i]
    return PruningPlan(layers=removed)


def _groups(l: LayerRefs, D: int, gone: set[int]) -> dict[int, list[int]]:
    """Kept KV group -> positions of its kept query heads."""
    out: dict[int, list[int]] = {}
    for pos, h in enumerate(l.heads):
        if pos not in gone:
            out.setdefault(h // D, []).append(pos)
    return out


def _heads(s: Structure, scores: dict[int, torch.Tensor], budget: int) -> PruningPlan:
    c, D = costs_of(s), s.dims.group_size
    gone: dict[int, set[int]] = {l.orig_index: set() for l in s.layers}
    total = 0
    while total < budget:
        best = None  # (mean score, layer, positions, cost)
        for l in s.layers:
            sc, groups = scores[l.orig_index], _groups(l, D, gone[l.orig_index])
            units = []
            if len(groups) > 1:  # a whole group (with its KV head)
                for g, pos in groups.items():
                    units.append((pos, len(pos) * c.q_head + c.kv_head))
            if all(len(p) > 1 for p in groups.values()) and D > 1:  # one head from every group
                pos = [min(p, key=lambda q: (float(sc[q]), q)) for p in groups.values()]
                units.append((pos, len(pos) * c.q_head))
            for pos, cost in units:
                key = (float(sc[pos].mean()), l.orig_index, sorted(pos))
                if math.isfinite(key[0]) and (best is None or key < best[0]):
                    best = (key, l.orig_index, pos, cost)
        if best is None:
            break
        _, layer, pos, cost = best
        gone[layer] |= set(pos)
        total += cost
    return _head_plan(s, gone)


def _head_plan(s: Structure, gone: dict[int, set[int]]) -> PruningPlan:
    return PruningPlan(heads={l.orig_index: {l.heads[p] for p in gone.get(l.orig_index, ())} for l in s.layers})


def _heads_naive(s: Structure, scores: dict[int, torch.Tensor], budget: int) -> PruningPlan:
    c = costs_of(s)
    ranked = _finite_ranked(s, scores)
    picked: dict[int, set[int]] = {l.orig_index: set() for l in s.layers}
    n = math.ceil(budget / (c.q_head + c.kv_head / s.dims.group_size))
    for _, layer, pos in ranked[:n]:
        picked[layer].add(pos)
    return repair_heads(s, picked, scores)


def repair_heads(s: Structure, picked: dict[int, set[int]], scores: dict[int, torch.Tensor]) -> PruningPlan:
    """Make per-head picks valid, deterministically: KV groups picked whole go whole (one group
    always stays); the other groups each lose the same number of heads, the mean of what was
    picked in them rounded half up (at most all but one), chosen as their lowest-scored heads."""
    D = s.dims.group_size
    gone: dict[int, set[int]] = {}
    for l in s.layers:
        sc, mine = scores[l.orig_index], picked.get(l.orig_index, set())
        groups = _groups(l, D, set())
        whole = [g for g, pos in groups.items() if set(pos) <= mine]
        whole = sorted(whole, key=lambda g: (float(sc[groups[g]].mean()), g))[: len(groups) - 1]
        rest = {g: pos for g, pos in groups.items() if g not in whole}
        k = math.floor(sum(len(set(pos) & mine) for pos in rest.values()) / len(rest) + 0.5)  # half up
        k = min(k, min(len(pos) for pos in rest.values()) - 1)
        out = {p for g in whole for p in groups[g]}
        for pos in rest.values():
            out |= set(sorted(pos, key=lambda q: (float(sc[q]), q))[:k])
        gone[l.orig_index] = out
    return _head_plan(s, gone)


def per_layer_ranks(scores: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
    """Each finite score replaced by (rank + 0.5) / count inside its layer (lowest first, ties by index);
    +inf stays +inf."""
    out = {}
    for layer, v in scores.items():
        v = torch.as_tensor(v, dtype=torch.float64)
        finite = torch.isfinite(v)
        r = torch.full_like(v, math.inf)
        idx = torch.nonzero(finite).flatten()
        order = idx[torch.argsort(v[idx], stable=True)]
        r[order] = (torch.arange(len(order), dtype=torch.float64) + 0.5) / max(len(order), 1)
        out[layer] = r
    return out


def _finite_ranked(s: Structure, scores: dict[int, torch.Tensor]) -> list[tuple[float, int, int]]:
    """(score, layer, position) of every finite-scored unit, lowest first, ties by index."""
    return sorted((float(v), l.orig_index, p) for l in s.layers for p, v in enumerate(scores[l.orig_index])
                  if math.isfinite(float(v)))


def _channels(s: Structure, scores: dict[int, torch.Tensor], budget: int, max_fraction: float) -> PruningPlan:
    cost = costs_of(s).channel
    n = math.ceil(budget / cost)
    ranked = _finite_ranked(s, scores)
    cap = {l.orig_index: min(len(l.channels) - 1, int(max_fraction * len(l.channels))) for l in s.layers}
    chans = {l.orig_index: l.channels for l in s.layers}
    out: dict[int, set[int]] = {l.orig_index: set() for l in s.layers}
    taken = 0
    for _, layer, pos in ranked:
        if taken >= n:
            break
        if len(out[layer]) < cap[layer]:
            out[layer].add(chans[layer][pos])
            taken += 1
    return PruningPlan(channels=out)
