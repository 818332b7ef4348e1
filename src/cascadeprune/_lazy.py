"""Packages whose public names are imported on first use, and references to objects by ``"module:name"``.

Both keep torch-free paths torch-free: ``cascadeprune --help``, ``serve`` and ``bench`` of an ONNX
artifact, and the wiring of registries (``cascadeprune.wiring``) import no module they do not use.

Example::

    lazy_package(__name__, {"resolve": "cascadeprune.arch.resolve"})   # in a package's __init__.py
    load_ref("cascadeprune.surgery.verify:verify_spec")                 # the function, imported now
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any


def load_ref(ref: Any) -> Any:
    """``"module:name"`` -> that object (imported now); anything else is returned as it is."""
    if not isinstance(ref, str):
        return ref
    module, sep, name = ref.partition(":")
    if not sep:
        raise ValueError(f"reference {ref!r} is not 'module:name'")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def lazy_package(module_name: str, where: dict[str, str]) -> None:
    """Make the package ``module_name`` import each public name from ``where[name]`` (a module) on first use.

    A submodule named like one of its public names (``arch.resolve`` and ``arch.resolve.resolve``) stays
    hidden behind the name, as it is behind an eager ``from .resolve import resolve``."""

    class LazyPackage(types.ModuleType):
        def __getattr__(self, name: str):
            if name not in where:
                raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
            value = getattr(importlib.import_module(where[name]), name)
            types.ModuleType.__setattr__(self, name, value)
            return value

        def __dir__(self):
            return sorted(set(super().__dir__()) | set(where))

        def __setattr__(self, name: str, value) -> None:
            if name in where and isinstance(value, types.ModuleType) and value.__name__ == where[name]:
                value = getattr(value, name)  # importing the submodule binds it here: keep the public object
            types.ModuleType.__setattr__(self, name, value)

    sys.modules[module_name].__class__ = LazyPackage
