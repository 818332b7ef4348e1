"""Explicit registry of importance criteria: ``(granularity, name) -> pure function``.

A criterion maps calibration statistics to scores, higher = more important:

- layers: ``fn(stats, **opts) -> dict[original layer index, float]``
- heads / channels: ``fn(stats, mode, **opts) -> dict[original layer index, tensor over the
  layer's current units]``

Each registration says whether the criterion implements ``mode="naive"`` (single projections scored
independently) and which options a recipe may pass it; ``score`` and ``check`` refuse anything else,
so a misspelled option or a ``naive`` that would change nothing never passes silently. It also
declares what the criterion needs, read by every caller (the engine, the baselines' helpers, ``sia``)
through :func:`spec` rather than by the criterion's name: gradients (``collect(gradients=True)``),
measured layer ablations (``collect_ablation``), or nothing from the data at all (``weight_only``).

Example::

    scores = score("heads", "wanda_sp", stats)            # {0: tensor([...]), 1: ...}
    check("layers", "lcr", "grouped", {"protect_ends": False})
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

GRANULARITIES = ("layers", "heads", "channels")
CRITERIA: dict[tuple[str, str], Callable] = {}


@dataclass(frozen=True)
class CriterionSpec:
    naive: bool = False  # implements mode="naive"
    options: tuple[str, ...] = ()  # keyword options a recipe may set
    gradients: bool = False  # needs the loss gradients: collect(..., gradients=True)
    ablation: bool = False  # needs measured layer ablations: calib.collect_ablation
    weight_only: bool = False  # never looks at calibration data: re-scoring after a removal cannot change it


SPECS: dict[tuple[str, str], CriterionSpec] = {}


def register(granularity: str, name: str, naive: bool = False, options: tuple[str, ...] = (), gradients: bool = False,
             ablation: bool = False, weight_only: bool = False):
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")

    def deco(fn: Callable) -> Callable:
        if (granularity, name) in CRITERIA:
            raise ValueError(f"criterion {name!r} for {granularity} is already registered")
        CRITERIA[(granularity, name)] = fn
        SPECS[(granularity, name)] = CriterionSpec(naive, tuple(options), gradients, ablation, weight_only)
        return fn

    return deco


def spec(granularity: str, name: str) -> CriterionSpec:
    """What criterion ``name`` of ``granularity`` needs and takes (ValueError naming the choices if unknown)."""
    if (granularity, name) not in SPECS:
        raise ValueError(f"no {granularity} criterion {name!r}; choose one of {', '.join(names(granularity))}")
    return SPECS[(granularity, name)]


def names(granularity: str) -> list[str]:
    return sorted(n for g, n in CRITERIA if g == granularity)


def check(granularity: str, name: str, mode: str = "grouped", options: dict | None = None) -> None:
    """Raise ValueError naming what is wrong: an unknown criterion, ``naive`` where it is not
    implemented, or an option the criterion does not take."""
    if (granularity, name) not in CRITERIA:
        raise ValueError(f"no {granularity} criterion {name!r}; choose one of {', '.join(names(granularity))}")
    spec = SPECS[(granularity, name)]
    if mode not in ("grouped", "naive"):
        raise ValueError(f"mode {mode!r} is not grouped or naive")
    if mode == "naive" and not spec.naive:
        with_naive = [n for n in names(granularity) if SPECS[(granularity, n)].naive]
        raise ValueError(f"{granularity} criterion {name!r} has no naive mode (it would score exactly as grouped); "
                         f"naive exists for: {', '.join(with_naive) or 'none'}")
    unknown = sorted(set(options or {}) - set(spec.options))
    if unknown:
        raise ValueError(f"{granularity} criterion {name!r} has no option {unknown[0]!r} "
                         f"(options: {', '.join(spec.options) or 'none'})")


def score(granularity: str, name: str, stats, mode: str = "grouped", seed: int = 0, protect_ends: bool = True,
          **options):
    """Scores of ``granularity`` units by criterion ``name``; ``seed`` and ``protect_ends`` are the engine's
    context (criteria that do not use them ignore them), ``options`` are checked against the registration."""
    check(granularity, name, mode, options)
    return CRITERIA[(granularity, name)](stats, mode=mode, seed=seed, protect_ends=protect_ends, **options)
