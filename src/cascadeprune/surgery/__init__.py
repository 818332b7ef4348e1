"""Apply a plan: slice tensors, update config, check invariants."""

from cascadeprune.surgery.apply import apply_plan
from cascadeprune.surgery.bias import compensate_bias
from cascadeprune.surgery.masking import mask_plan

__all__ = ["apply_plan", "compensate_bias", "mask_plan"]
