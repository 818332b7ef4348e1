"""``wanda-sp``: structured Wanda, one shot, no fine-tuning.

Papers: Sun et al., "A Simple and Effective Pruning Approach for Large Language Models" (Wanda, ICLR
2024) scores a weight by |W_ij| * ||X_j||_2; An et al., "Fluctuation-based Adaptive Structured Pruning
for Large Language Models" (FLAP, AAAI 2024) made it structured ("Wanda-sp"), summing that score over a
head's or channel's weights.

Defaults followed: criterion ``wanda_sp`` on the input of the attention output and FFN down projections
(calibration activations, one pass), one shot, the same fraction of heads and channels removed in every
layer, layers never removed, no fine-tuning (``baseline_recovery: budget`` gives it the run's recovery
budget, to report it both ways).
"""

from __future__ import annotations

from cascadeprune.importance import score
from cascadeprune.methods.baselines.common import Baseline, statistics, uniform_plan
from cascadeprune.surgery import apply_plan


def cut(model, batches, target: int, loss_fn, max_fraction: float = 0.97) -> None:
    stats = statistics(model, batches, loss_fn)
    plan = uniform_plan(model, score("heads", "wanda_sp", stats), score("channels", "wanda_sp", stats), target,
                        max_fraction)
    apply_plan(model, plan, inplace=True)


METHOD = Baseline("wanda-sp", "Sun et al. 2024 (Wanda); structured as in An et al. 2024 (FLAP)",
                  "heads and FFN channels", "sum of |W| * ||X||_2 over the unit", "one shot, uniform fraction per layer",
                  False, cut)
