"""Published structured-pruning baselines as methods of the same engine (``--method NAME``).

Each is a short module that names its paper and the defaults it follows; the engine gives every
method the same calibration batches, target ratio (reached within 1 %) and recovery budget (the sum
of the recipe's stage budgets, as for ``oneshot``), or none where the authors use none
(``baseline_recovery: authors``, the default; ``budget`` or ``none`` override it, so a method can be
reported both ways). The recipe's stage criteria do not apply to a baseline: it brings its own.

Example::

    cascadeprune compress CLASSIFIER --task cwru-4class-crossload --ratio 8.7 --recipe recipes/cpu-fast.yaml \\
        --method flap --out runs/flap-8.7
"""

from __future__ import annotations

from cascadeprune.methods.baselines import flap, llm_pruner, magnitude, shortgpt, wanda_sp
from cascadeprune.methods.baselines.common import Baseline

BASELINES: dict[str, Baseline] = {}


def register(method: Baseline) -> None:
    if method.name in BASELINES:
        raise ValueError(f"baseline {method.name!r} is already registered")
    BASELINES[method.name] = method


for _m in (magnitude, wanda_sp, llm_pruner, flap, shortgpt):
    register(_m.METHOD)

__all__ = ["BASELINES", "Baseline", "register"]
