"""Structural Independence Assumption (SIA): will per-component importance criteria be reliable?"""

from cascadeprune.sia.static import SIAVerdict, static_check

__all__ = ["SIAVerdict", "static_check"]
