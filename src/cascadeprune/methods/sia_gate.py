"""Which empirical SIA check method auto gates granularities with (torch-free, so the wiring can fill it).

The core does not import ``cascadeprune.sia`` (it sits above the engine); :mod:`cascadeprune.wiring` registers
``"cascadeprune.sia.measure:measure"`` here, and ``methods/auto.py`` calls it when it is there.

Example::

    register_sia_check("mypkg.sia:measure")   # same signature as cascadeprune.sia.measure.measure
"""

from __future__ import annotations

import importlib
from typing import Callable

_CHECK: list[str] = []


def register_sia_check(ref: str) -> None:
    """``"module:function"``, imported on first use."""
    if ":" not in ref:
        raise ValueError(f"an SIA check is 'module:function', got {ref!r}")
    _CHECK[:] = [ref]


def sia_check() -> Callable | None:
    if not _CHECK:
        return None
    module, _, attr = _CHECK[0].partition(":")
    return getattr(importlib.import_module(module), attr)
