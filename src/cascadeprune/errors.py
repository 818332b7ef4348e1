"""Exceptions raised by cascadeprune. Every message names the thing at fault."""


class CascadePruneError(Exception):
    """Base class for every error this package raises on purpose."""


class UnsupportedArchitectureError(CascadePruneError):
    """The model's family is not in the architecture table (``cascadeprune.arch.table.FAMILIES``) and its
    layout was not recognised (no match, several matches, or pruning != masking on the spot)."""


class PlanError(CascadePruneError):
    """A pruning plan breaks a rule; raised before any tensor is touched."""


class ModelSourceError(CascadePruneError):
    """A model path, GGUF file or built-in name could not be loaded."""


class OutputExistsError(CascadePruneError):
    """An output directory already holds files and overwriting was not asked for."""
