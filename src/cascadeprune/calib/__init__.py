"""Hooks that collect statistics over calibration batches (running sums, bounded memory)."""

from cascadeprune.calib.collect import (CKA_TOKENS, FeatureStats, LayerChange, Statistics, TokenSampler, collect,
                                       collect_ablation, linear_cka, unit_rows)

__all__ = ["CKA_TOKENS", "FeatureStats", "TokenSampler", "linear_cka", "unit_rows", "LayerChange", "Statistics", "collect", "collect_ablation"]
