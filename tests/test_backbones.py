"""The controlled 2x2 of from-scratch backbones (MHA / GQA x GELU / SwiGLU): equal size, the intended
attention and FFN kinds, physical removal equal to masking, and `cascadeprune train` on each new cell.
Real configurations, random weights, a couple of training steps at most; no downloads."""

from __future__ import annotations

import itertools

import pytest
import torch

from cascadeprune import apply_plan, load_model, mask_plan
from cascadeprune.accounting import block_params
from cascadeprune.arch.resolve import resolve
from cascadeprune.cli import main
from cascadeprune.inspection import inspect_model
from cascadeprune.sia.measure import static_for
from cascadeprune.storage.load import load_backbone
from conftest import make_plan

# name: (attention, FFN, static verdict for heads, for channels, documented block params)
GRID = {
    "gpt2-10m": ("MHA", "GELU_NEW", "holds", "holds", 10_646_784),
    "gqa-gelu-10m": ("GQA", "GELU_PYTORCH_TANH", "violated", "holds", 10_497_600),
    "mha-swiglu-10m": ("MHA", "SwiGLU", "holds", "violated", 10_510_848),
    "llama-10m": ("GQA", "SwiGLU", "violated", "violated", 10_326_528),
}
NEW = ("gqa-gelu-10m", "mha-swiglu-10m")


@pytest.fixture(scope="module")
def backbones():
    return {name: load_backbone(name).eval() for name in GRID}


def test_the_four_have_matching_block_parameters(backbones):
    sizes = {name: block_params(b) for name, b in backbones.items()}
    assert sizes == {name: spec[-1] for name, spec in GRID.items()}  # the numbers the docstring states
    for a, b in itertools.combinations(sizes, 2):
        if a in NEW or b in NEW:  # the new cells sit between the old pair (3.1 % apart): within 3 % of every other
            assert max(sizes[a], sizes[b]) / min(sizes[a], sizes[b]) < 1.03, (a, b)
    for b in backbones.values():  # same depth, width and query heads everywhere
        s = resolve(b)
        assert (s.dims.num_layers, s.dims.hidden_size, s.dims.num_heads, s.dims.head_dim) == (6, 384, 6, 64)


@pytest.mark.parametrize("name", list(GRID))
def test_attention_and_ffn_kinds_and_the_static_verdict(backbones, name):
    attention, ffn, heads, channels, _ = GRID[name]
    info = inspect_model(backbones[name])
    assert info["attention"]["kind"] == attention and info["ffn"]["kind"] == ffn
    assert info["attention"]["group_size"] == (3 if attention == "GQA" else 1)
    assert info["ffn"]["gated"] == (ffn == "SwiGLU")
    s = resolve(backbones[name])
    assert static_for(s, "heads")["verdict"] == heads and static_for(s, "channels")["verdict"] == channels
    assert info["sia"]["holds"] == (name == "gpt2-10m")  # only MHA + GELU satisfies the static check


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("kind, uniform", [("heads", False), ("channels", False), ("mixed", True), ("mixed", False)])
def test_physical_removal_equals_masking(backbones, name, kind, uniform):
    b = backbones[name]
    plan = make_plan(b, kind, uniform, seed=3)
    x = torch.randn(2, 16, 384, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        with mask_plan(b, plan):
            ref = b(inputs_embeds=x).last_hidden_state
        got = apply_plan(b, plan)(inputs_embeds=x).last_hidden_state
    assert torch.allclose(got, ref, atol=1e-4, rtol=1e-4), (got - ref).abs().max()


@pytest.mark.parametrize("name, cls", [("gqa-gelu-10m", "Starcoder2Model"), ("mha-swiglu-10m", "LlamaModel")])
def test_train_builds_a_classifier_on_each_new_backbone(tmp_path, name, cls):
    out = tmp_path / name
    assert main(["train", "--task", "synthetic", "--backbone", name, "--out", str(out), "--max-steps", "2",
                 "--window", "512", "--patch", "16", "--stride", "2048", "--features", "raw",
                 "--no-global-token"]) == 0
    clf = load_model(out)
    assert type(clf.backbone).__name__ == cls and clf.pooling == "last"  # causal decoders pool the last token
    assert clf.meta["backbone"] == name and block_params(clf) == GRID[name][-1]
