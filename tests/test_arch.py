"""The architecture table resolves every required family; unknown ones fail with a clear error."""

from __future__ import annotations

import pytest
import transformers

from cascadeprune import UnsupportedArchitectureError, resolve
from cascadeprune.arch.table import FAMILIES, register
from cascadeprune.inspection import inspect_model
from cascadeprune.storage.sources import tiny_model

REQUIRED = {"gpt2", "gpt_neox", "bert", "roberta", "llama", "mistral", "qwen2"}
EXPECTED = {  # family: (attention kind, D, gated FFN)
    "llama": ("GQA", 4, True), "mistral": ("GQA", 2, True), "qwen2": ("GQA", 3, True),
    "gpt2": ("MHA", 1, False), "gpt_neox": ("MHA", 1, False), "bert": ("MHA", 1, False), "roberta": ("MHA", 1, False),
    # issue 21 (tiny configs in cascadeprune.storage.sources)
    "qwen3": ("GQA", 4, True), "gemma": ("GQA", 2, True), "gemma2": ("GQA", 2, True), "gemma3_text": ("MQA", 4, True),
    "phi3": ("GQA", 4, True), "phi": ("MHA", 1, False), "cohere": ("GQA", 2, True), "starcoder2": ("GQA", 2, False),
    "opt": ("MHA", 1, False), "distilbert": ("MHA", 1, False), "olmo2": ("GQA", 2, True),
}


def test_required_families_are_in_the_table():
    assert REQUIRED <= set(FAMILIES)


@pytest.mark.parametrize("family", sorted(EXPECTED))
def test_resolve_and_inspect(family):
    model = tiny_model(family)
    s = resolve(model)
    assert len(s.layers) == model.config.num_hidden_layers
    info = inspect_model(model)
    kind, D, gated = EXPECTED[family]
    assert (info["attention"]["kind"], info["attention"]["group_size"], info["ffn"]["gated"]) == (kind, D, gated)
    assert info["sia"]["holds"] == (D == 1 and not gated)
    p = info["params"]
    assert p["total"] == sum(t.numel() for t in model.parameters())  # tied weights counted once
    assert info["compression"]["ratio"] == 1.0


def test_unknown_family_names_the_table():
    # GPT-J has no entry and no layout of the table fits it (more cases: tests/test_families.py)
    config = transformers.GPTJConfig(vocab_size=32, n_embd=16, n_layer=1, n_head=2, rotary_dim=4, n_positions=32)
    model = transformers.GPTJForCausalLM(config)
    with pytest.raises(UnsupportedArchitectureError, match=r"'gptj'.*cascadeprune\.arch\.table\.FAMILIES"):
        resolve(model)


def test_register_rejects_duplicates():
    with pytest.raises(ValueError, match="already"):
        register("llama", FAMILIES["llama"])
