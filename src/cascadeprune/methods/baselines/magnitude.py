"""``magnitude``: structured weight-magnitude pruning, one shot.

Paper: Li et al., "Pruning Filters for Efficient ConvNets" (ICLR 2017): a unit's importance is the L1
norm of its weights; as adapted to transformer heads and FFN channels ("Magnitude-sp") in An et al.,
"Fluctuation-based Adaptive Structured Pruning for Large Language Models" (FLAP, AAAI 2024).

Defaults followed: the L1 norm of each coupled unit (a head's q/k/v rows and o-projection columns; a
channel's up/gate rows and down column; criterion ``l1``), no calibration data needed, one shot, the
same fraction of heads and channels removed in every layer (FLAP's uniform baseline setting), layers
never removed. Recovery: the run's full recovery budget after the cut (``baseline_recovery: none`` for
the raw cut).
"""

from __future__ import annotations

from cascadeprune.importance import score
from cascadeprune.methods.baselines.common import Baseline, statistics, uniform_plan
from cascadeprune.surgery import apply_plan


def cut(model, batches, target: int, loss_fn, max_fraction: float = 0.97) -> None:
    stats = statistics(model, batches[:1], loss_fn)  # weights only: one batch just resolves the structure
    plan = uniform_plan(model, score("heads", "l1", stats), score("channels", "l1", stats), target, max_fraction)
    apply_plan(model, plan, inplace=True)


METHOD = Baseline("magnitude", "Li et al. 2017; Magnitude-sp as in An et al. 2024 (FLAP)", "heads and FFN channels",
                  "L1 norm of the coupled unit's weights", "one shot, uniform fraction per layer", True, cut)
