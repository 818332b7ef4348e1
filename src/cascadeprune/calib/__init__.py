"""Hooks that collect statistics over calibration batches (running sums, bounded memory)."""

from cascadeprune.calib.collect import FeatureStats, LayerChange, Statistics, collect, collect_ablation

__all__ = ["FeatureStats", "LayerChange", "Statistics", "collect", "collect_ablation"]
