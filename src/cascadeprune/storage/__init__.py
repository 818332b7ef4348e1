"""Loading sources (HF dirs, GGUF, pruned dirs, built-ins) and atomic saving."""

from cascadeprune.storage.load import load_model
from cascadeprune.storage.save import save_model

__all__ = ["load_model", "save_model"]
