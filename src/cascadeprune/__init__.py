"""cascadeprune: structured pruning of Hugging Face transformers (layers, heads, FFN channels).

Example::

    import cascadeprune as cp
    model = cp.load_model("tiny-llama")
    plan = cp.PruningPlan(layers={2}, heads={0: {0, 1}}, channels={1: set(range(10))})
    small = cp.apply_plan(model, plan)
    cp.compression_ratio(model, small)
    cp.save_model(small, "out/small")
"""

from cascadeprune.accounting import compression_ratio, param_breakdown, predict_block_params
from cascadeprune.arch import resolve
from cascadeprune.errors import CascadePruneError, ModelSourceError, PlanError, UnsupportedArchitectureError
from cascadeprune.plan import PruningPlan, validate
from cascadeprune.storage import load_model, save_model
from cascadeprune.surgery import apply_plan, mask_plan

__version__ = "0.1.0"

__all__ = [
    "CascadePruneError", "ModelSourceError", "PlanError", "PruningPlan", "UnsupportedArchitectureError",
    "apply_plan", "compression_ratio", "load_model", "mask_plan", "param_breakdown", "predict_block_params",
    "resolve", "save_model", "validate",
]
