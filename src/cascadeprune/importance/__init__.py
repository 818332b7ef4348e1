"""Importance criteria: pure functions of calibration statistics, one small file each.

Importing this package registers every criterion (explicitly, below; no package walking)."""

from cascadeprune.importance import activation, layer_change, random_scores, taylor, weight_norm  # noqa: F401
from cascadeprune.importance.registry import CRITERIA, SPECS, check, names, register, score, spec

__all__ = ["CRITERIA", "SPECS", "check", "names", "register", "score", "spec"]
