"""cascadeprune: structured pruning of Hugging Face transformers (layers, heads, FFN channels).

Example::

    import cascadeprune as cp
    model = cp.load_model("tiny-llama")
    plan = cp.PruningPlan(layers={2}, heads={0: {0, 1}}, channels={1: set(range(10))})
    small = cp.apply_plan(model, plan)
    cp.compression_ratio(model, small)
    cp.save_model(small, "out/small")

Names are imported on first use, so ``import cascadeprune.deploy.runtime`` (what a service or a
benchmark of an ONNX export needs) does not pull in torch or transformers. Importing the package
wires the registries (:mod:`cascadeprune.wiring`, torch-free).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_WHERE = {
    "compression_ratio": "accounting", "param_breakdown": "accounting", "predict_block_params": "accounting",
    "resolve": "arch", "CascadePruneError": "errors", "ModelSourceError": "errors", "PlanError": "errors",
    "UnsupportedArchitectureError": "errors", "PruningPlan": "plan", "validate": "plan",
    "load_model": "storage", "save_model": "storage", "apply_plan": "surgery", "mask_plan": "surgery",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'cascadeprune' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"cascadeprune.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def _wire() -> None:
    from cascadeprune.wiring import wire

    wire()


_wire()
