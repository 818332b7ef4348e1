"""Loading sources (HF dirs, GGUF, pruned dirs, built-ins) and atomic saving.

Names are imported on first use: ``cascadeprune.wiring`` registers directory formats with
``storage.formats`` without importing torch."""

from cascadeprune._lazy import lazy_package

__all__ = ["load_model", "save_model"]
lazy_package(__name__, {"load_model": "cascadeprune.storage.load", "save_model": "cascadeprune.storage.save"})
