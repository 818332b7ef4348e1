"""The declarative table of model families and its resolution into module references."""

from cascadeprune.arch.resolve import Dims, LayerRefs, Structure, dense_dims, resolve, spec_for
from cascadeprune.arch.table import FAMILIES, FamilySpec, family_for, register

__all__ = ["FAMILIES", "FamilySpec", "family_for", "register", "Dims", "LayerRefs", "Structure", "dense_dims",
           "resolve", "spec_for"]
