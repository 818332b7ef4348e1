"""Explicit registry of importance criteria: ``(granularity, name) -> pure function``.

A criterion maps calibration statistics to scores, higher = more important:

- layers: ``fn(stats, **opts) -> dict[original layer index, float]``
- heads / channels: ``fn(stats, mode, **opts) -> dict[original layer index, tensor over the
  layer's current units]``

Each registration says whether the criterion implements ``mode="naive"`` (single projections scored
independently) and which options a recipe may pass it; ``score`` and ``check`` refuse anything else,
so a misspelled option or a ``naive`` that would change nothing never passes silently.

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


SPECS: dict[tuple[str, str], CriterionSpec] = {}


def register(granularity: str, name: str, naive: bool = False, options: tuple[str, ...] = ()):
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")

    def deco(fn: Callable) -> Callable:
        if (granularity, name) in CRITERIA:
            raise ValueError(f"criterion {name!r} for {granularity} is already registered")
        CRITERIA[(granularity, name)] = fn
        SPECS[(granularity, name)] = CriterionSpec(naive, tuple(options))
        return fn

    return deco


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
