"""``shortgpt``: remove whole layers by Block Influence, one shot, no fine-tuning.

Paper: Men et al., "ShortGPT: Layers in Large Language Models are More Redundant Than You Expect" (2024).

Defaults followed: Block Influence BI_l = E[1 - cos(h_in, h_out)] over calibration tokens (criterion
``block_influence``); the layers with the lowest BI go, all at once; no layer is protected (the first and
last compete like the others); nothing else is removed, so the method reaches only the ratios whole layers
give (n / (n - k) on n equal layers): a target not within 1 % of one is refused with the reachable ones
listed. No fine-tuning (``baseline_recovery: budget`` gives it the run's recovery budget, to report it
both ways).
"""

from __future__ import annotations

from cascadeprune.accounting import block_params, dense_block_params
from cascadeprune.arch.resolve import resolve
from cascadeprune.errors import CascadePruneError
from cascadeprune.importance import score
from cascadeprune.methods.baselines.common import Baseline, statistics
from cascadeprune.plan import PruningPlan
from cascadeprune.surgery import apply_plan

TOLERANCE = 0.01


def reachable_ratios(model) -> list[float]:
    """Ratios (dense / kept block params) after removing 0, 1, ... n-1 of the smallest layers."""
    dense, now = dense_block_params(model), block_params(model)
    sizes = sorted(sum(p.numel() for p in l.module.parameters()) for l in resolve(model).layers)
    out, gone = [], 0
    for n in sizes[:-1]:
        gone += n
        out.append(dense / (now - gone))
    return out


def cut(model, batches, target: int, loss_fn, max_fraction: float = 0.97) -> None:
    s = resolve(model)
    dense, now = dense_block_params(model), block_params(model)
    ratio = dense / target
    stats = statistics(model, batches, loss_fn)
    bi = score("layers", "block_influence", stats, protect_ends=False)
    order = sorted(bi, key=lambda i: (bi[i], i))
    size = {l.orig_index: sum(p.numel() for p in l.module.parameters()) for l in s.layers}
    best, gone = (abs(dense / now / ratio - 1), 0), 0
    for k, i in enumerate(order[:-1], start=1):
        gone += size[i]
        best = min(best, (abs(dense / (now - gone) / ratio - 1), k))
    if best[0] > TOLERANCE:
        options = ", ".join(f"{r:.3g}" for r in reachable_ratios(model))
        raise CascadePruneError(f"shortgpt removes whole layers only: ratio {ratio:.3g} is not within 1 % of one it "
                                f"can reach on this model ({options}); ask for one of those")
    apply_plan(model, PruningPlan(layers=set(order[: best[1]])), inplace=True)


METHOD = Baseline("shortgpt", "Men et al. 2024 (ShortGPT)", "whole layers", "Block Influence E[1 - cos(h_in, h_out)]",
                  "one shot, lowest BI first, no layer protected", False, cut)
