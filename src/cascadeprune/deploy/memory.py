"""Moved to :mod:`cascadeprune.memory` (the engine measures its stages' peaks too, and the core imports
no deploy); kept so existing imports work."""

from cascadeprune.memory import peak_rss_mb, process_peak_rss_mb, reset_peak_rss, rss_mb

__all__ = ["peak_rss_mb", "process_peak_rss_mb", "reset_peak_rss", "rss_mb"]
