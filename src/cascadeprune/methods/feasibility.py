"""Targets checked against the run's plan before anything costs: no calibration pass, no recovery step.

:func:`cascadeprune.methods.cascade.plan_run` predicts what each stage of a run removes from the model's
shape and the configuration alone; every registered target check reads that plan and returns ``None``
(reachable) or one line saying why not and what the plan can reach. The ratio is checked today; a
tolerance or latency target plugs in as another ``register_target(name, check)`` whose check reads the same
plan (the predicted block parameters per stage, ``max_ratio``, the stages that run).

Example::

    plan = plan_run(model, cfg, check=False)
    check_targets(plan, cfg)      # raises InfeasibleTargetError naming the first target out of reach
"""

from __future__ import annotations

import math
from typing import Callable

from cascadeprune.errors import CascadePruneError

RATIO_TOLERANCE = 0.01  # the achieved ratio is within 1 % of the target, or the run does not start


class InfeasibleTargetError(CascadePruneError):
    """A target cannot be reached by the run's plan; raised before any cost is spent."""


TARGET_CHECKS: dict[str, Callable[[dict, object], str | None]] = {}


def register_target(name: str, check: Callable[[dict, object], str | None]) -> None:
    """``check(plan, cfg) -> None | reason``; duplicates are refused."""
    if name in TARGET_CHECKS:
        raise ValueError(f"target check {name!r} is already registered")
    TARGET_CHECKS[name] = check


def check_targets(plan: dict, cfg) -> None:
    for check in TARGET_CHECKS.values():
        reason = check(plan, cfg)
        if reason:
            raise InfeasibleTargetError(reason)


def _ratio(plan: dict, cfg) -> str | None:
    r, most = cfg.ratio, plan["max_ratio"]
    at_most = f"this plan reaches at most {most:.2f}x" if math.isfinite(most) else "this plan has no upper limit"
    head = f"ratio {r:g} is not reachable by method {cfg.method!r} on this model"
    if not math.isfinite(r):
        return f"{head}: {at_most}; give a finite ratio > 1"
    target = plan["target_block_params"]
    if target <= 0:
        return f"{head}: it asks for {plan['dense_block_params']:,} / {r:g} < 1 block parameter; {at_most}"
    if target >= plan["block_params_before"]:
        return (f"{head}: the model already has {plan['block_params_before']:,} block params and the ratio asks for "
                f"{target:,}; {at_most}")
    got = plan["ratio_after"]
    if abs(got / r - 1) <= RATIO_TOLERANCE:
        return None
    from cascadeprune.methods.registry import get as get_method

    once = get_method(cfg.method).schedule == "once"  # one cut: more channel steps cannot help it
    hint = ("ask for a ratio the layers can reach" if cfg.method == "shortgpt" else
            "ask for a lower ratio, give layers a larger share" + ("" if once else ", or use more channel steps"))
    return (f"{head}: {at_most} (the cut would stop at {got:.2f}x; every layer keeps at least one head, at most "
            f"max_channel_fraction={cfg.max_channel_fraction:g} of its channels go per removal step, and at least "
            f"one layer stays); {hint}. Nothing was run")


register_target("ratio", _ratio)


def auto_dry_run(model, cfg) -> dict:
    """What ``compress --method auto --dry-run`` reports: the most the layout reaches on ``model`` and whether the
    ratio asked is within it. A ratio out of reach raises here as the run itself would (auto's own check)."""
    from cascadeprune.methods.auto import check_feasible, max_ratio

    if cfg.ratio:
        top = check_feasible(model, cfg.ratio, cfg.auto.layout, cfg.protect_ends, cfg.max_channel_fraction)
    else:
        top = max_ratio(model, cfg.auto.layout, cfg.protect_ends, cfg.max_channel_fraction)
    return {"method": "auto", "ratio": cfg.ratio or None, "max_loss": cfg.auto.max_loss, "max_ratio": top,
            "search_budget": cfg.auto.search_budget, "layout": cfg.auto.layout, "reachable": (cfg.ratio or 0) <= top}
