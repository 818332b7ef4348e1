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


def greedy_masked_and_pruned(model, plan, new_tokens: int):
    """Cached greedy generation of the masked model and of the pruned one, same prompt (seed 3)."""
    from cascadeprune import apply_plan, mask_plan

    ids = inputs(model, 3, batch=1)["input_ids"]
    kw = dict(max_new_tokens=new_tokens, do_sample=False, use_cache=True, output_logits=True,
              return_dict_in_generate=True, pad_token_id=0)
    with torch.no_grad():
        with mask_plan(model, plan):
            ref = model.generate(ids, **kw)
        got = apply_plan(model, plan).generate(ids, **kw)
    return ref, got


def check_compressed(res: dict, dense_block_params: int, ratio: float, x: torch.Tensor, tmp_path):
    """A compress result reached ``ratio`` within 1 %, its plan is valid, and it reloads to the same outputs."""
    from cascadeprune import load_model, save_model
    from cascadeprune.accounting import block_params
    from cascadeprune.arch import resolve
    from cascadeprune.plan import applied_plan, validate

    small = res["model"]
    assert abs(res["ratio_achieved"] / ratio - 1) <= 0.01
    assert dense_block_params / block_params(small) == pytest.approx(res["ratio_achieved"])
    validate(applied_plan(resolve(small)), resolve(small).dims)
    save_model(small, tmp_path / "final")
    with torch.no_grad():
        assert torch.equal(load_model(tmp_path / "final")(x), small(x))
    return small
