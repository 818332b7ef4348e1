"""Methods: turning scores into plans under a budget (the cascade engine builds on this).

``select`` and ``repair_heads`` are imported on first use, so ``methods.registry`` and ``methods.config``
(what ``cascadeprune --help`` reads) load without torch."""

from cascadeprune._lazy import lazy_package

__all__ = ["repair_heads", "select"]
lazy_package(__name__, {name: "cascadeprune.methods.select" for name in __all__})
