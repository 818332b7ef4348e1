"""Apply a plan: slice tensors, update config, check invariants."""

from cascadeprune.arch.recognise import register_verifier
from cascadeprune.surgery.apply import apply_plan
from cascadeprune.surgery.bias import compensate_bias, ensure_bias
from cascadeprune.surgery.masking import mask_plan
from cascadeprune.surgery.verify import verify_spec

register_verifier(verify_spec)  # recognised layouts are checked with this package's surgery and masking

__all__ = ["apply_plan", "compensate_bias", "ensure_bias", "mask_plan", "verify_spec"]
