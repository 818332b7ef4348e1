"""The declarative table of model families and its resolution into module references.

Names are imported on first use: ``cascadeprune.wiring`` registers the layout verifier with
``arch.recognise`` without importing torch."""

from cascadeprune._lazy import lazy_package

_RESOLVE = ("Dims", "LayerRefs", "Structure", "dense_dims", "resolve", "spec_for")
_TABLE = ("FAMILIES", "FamilySpec", "family_for", "register")
__all__ = list(_TABLE + _RESOLVE)
lazy_package(__name__, {n: "cascadeprune.arch.resolve" for n in _RESOLVE} | {n: "cascadeprune.arch.table" for n in _TABLE})
