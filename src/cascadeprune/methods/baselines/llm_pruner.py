"""``llm-pruner``: first-order Taylor importance of coupled groups, one shot, LoRA recovery at the end.

Paper: Ma, Fang and Wang, "LLM-Pruner: On the Structural Pruning of Large Language Models" (NeurIPS 2023).

Defaults followed: dependency groups are the coupled units (a head with its q/k/v rows and o-projection
columns; a channel with its up/gate rows and down column); a group's importance is the first-order
Taylor term |sum over its weights of w * dL/dw| (criterion ``taylor``, gradients of the task loss on the
calibration batches, summed over the group); one shot; the same pruning ratio for heads and channels in
every pruned layer; then LoRA recovery once (the run's full recovery budget, rank and targets of the
recipe). Departure: the authors leave the first and last few layers unpruned (layers 4-30 of LLaMA-7B's
32); on a 12-layer model above ~1.25x that range cannot reach the target, so every layer is pruned.
"""

from __future__ import annotations

from cascadeprune.importance import score
from cascadeprune.methods.baselines.common import Baseline, statistics, uniform_plan
from cascadeprune.surgery import apply_plan


def cut(model, batches, target: int, loss_fn, max_fraction: float = 0.97) -> None:
    stats = statistics(model, batches, loss_fn, gradients=True)
    plan = uniform_plan(model, score("heads", "taylor", stats), score("channels", "taylor", stats), target,
                        max_fraction)
    apply_plan(model, plan, inplace=True)


METHOD = Baseline("llm-pruner", "Ma et al. 2023 (LLM-Pruner)", "coupled head and FFN-channel groups",
                  "first-order Taylor |sum w * dL/dw| per group", "one shot, uniform ratio per layer", True, cut)
