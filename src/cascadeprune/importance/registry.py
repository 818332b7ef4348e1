"""Explicit registry of importance criteria: ``(granularity, name) -> pure function``.

A criterion maps calibration statistics to scores, higher = more important:

- layers: ``fn(stats, **opts) -> dict[original layer index, float]``
- heads / channels: ``fn(stats, mode, **opts) -> dict[original layer index, tensor over the
  layer's current units]``

Example::

    scores = score("heads", "wanda_sp", stats)            # {0: tensor([...]), 1: ...}
"""

from __future__ import annotations

from typing import Callable

GRANULARITIES = ("layers", "heads", "channels")
CRITERIA: dict[tuple[str, str], Callable] = {}


def register(granularity: str, name: str):
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")

    def deco(fn: Callable) -> Callable:
        if (granularity, name) in CRITERIA:
            raise ValueError(f"criterion {name!r} for {granularity} is already registered")
        CRITERIA[(granularity, name)] = fn
        return fn

    return deco


def names(granularity: str) -> list[str]:
    return sorted(n for g, n in CRITERIA if g == granularity)


def score(granularity: str, name: str, stats, **opts):
    try:
        fn = CRITERIA[(granularity, name)]
    except KeyError:
        raise ValueError(f"no {granularity} criterion {name!r}; choose one of {', '.join(names(granularity))}") from None
    return fn(stats, **opts)
