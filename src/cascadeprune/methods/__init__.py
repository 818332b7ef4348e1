"""Methods: turning scores into plans under a budget (the cascade engine builds on this)."""

from cascadeprune.methods.select import repair_heads, select

__all__ = ["repair_heads", "select"]
