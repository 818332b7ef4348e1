"""Shared fixtures: tiny random models of every family (never downloads)."""

from __future__ import annotations

import random

import pytest
import torch

from cascadeprune.arch.resolve import dense_dims
from cascadeprune.plan import random_plan
from cascadeprune.storage.sources import CORE, ENCODERS, tiny_model

FAMILIES = sorted(CORE)  # the other families: tests/test_families.py
DECODERS = [f for f in FAMILIES if f not in ENCODERS]
PLAN_KINDS = {
    "layers": dict(layers=0.25),
    "heads": dict(heads=0.5),
    "channels": dict(channels=0.5),
    "mixed": dict(layers=0.25, heads=0.4, channels=0.3),
}


def make_plan(model, kind: str, uniform: bool, seed: int):
    return random_plan(dense_dims(model), random.Random(seed), uniform=uniform, **PLAN_KINDS[kind])


def inputs(model, seed: int = 0, batch: int = 2, length: int = 12) -> dict:
    """Token ids plus an attention mask with left padding on the first row (exercises masks)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, model.config.vocab_size, (batch, length), generator=g)
    mask = torch.ones_like(ids)
    mask[0, :3] = 0
    return {"input_ids": ids, "attention_mask": mask}


@torch.no_grad()
def forward(model, batch) -> torch.Tensor:
    """Main output: logits for decoders, last hidden state for encoders (padding rows excluded)."""
    out = model(**batch)[0]
    return out[batch["attention_mask"].bool()]


@pytest.fixture(params=FAMILIES)
def family(request):
    return request.param


@pytest.fixture
def model(family):
    return tiny_model(family, seed=0)
