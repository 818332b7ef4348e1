"""Apply a plan: slice tensors, update config, check invariants.

``verify_spec`` is the check ``arch.recognise`` runs on a recognised layout; ``cascadeprune.wiring``
registers it there (arch sits below surgery and never imports it)."""

from cascadeprune.surgery.apply import apply_plan
from cascadeprune.surgery.bias import compensate_bias, ensure_bias
from cascadeprune.surgery.masking import mask_plan
from cascadeprune.surgery.verify import verify_spec

__all__ = ["apply_plan", "compensate_bias", "ensure_bias", "mask_plan", "verify_spec"]
