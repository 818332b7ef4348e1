"""Save -> reload gives identical outputs; writes are atomic; bad sources get clear errors."""

from __future__ import annotations

import json

import pytest
import torch
import transformers

import cascadeprune.storage.save as save_mod
from cascadeprune import ModelSourceError, PruningPlan, apply_plan, load_model, save_model
from cascadeprune.errors import OutputExistsError
from cascadeprune.storage.sources import ENCODERS, tiny_model
from conftest import FAMILIES, forward, inputs, make_plan

HEAD_DIM_KEY = {"llama", "mistral", "qwen2"}  # families whose config stores head_dim explicitly


def stock_auto(family):
    return transformers.AutoModel if family in ENCODERS else transformers.AutoModelForCausalLM


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("kind", ["layers", "channels", "mixed"])
def test_uniform_plans_reload_with_stock_auto_class(family, kind, tmp_path):
    model = tiny_model(family, 1)
    plan = make_plan(model, kind, uniform=True, seed=1)
    if kind == "mixed" and family not in HEAD_DIM_KEY:
        plan = PruningPlan(plan.layers, {}, plan.channels)  # head changes need an explicit head_dim key
    pruned = apply_plan(model, plan)
    assert pruned.config.cascadeprune["stock_loadable"]
    save_model(pruned, tmp_path / "out")
    batch = inputs(model)
    stock = stock_auto(family).from_pretrained(tmp_path / "out").eval()
    assert torch.equal(forward(stock, batch), forward(pruned, batch))
    assert torch.equal(forward(load_model(tmp_path / "out"), batch), forward(pruned, batch))


@pytest.mark.parametrize("family", FAMILIES)
def test_nonuniform_plans_reload_with_load_model(family, tmp_path):
    model = tiny_model(family, 2)
    pruned = apply_plan(model, make_plan(model, "mixed", uniform=False, seed=2))
    assert not pruned.config.cascadeprune["stock_loadable"]
    save_model(pruned, tmp_path / "out")
    batch = inputs(model)
    reloaded = load_model(tmp_path / "out")
    assert type(reloaded) is type(pruned)
    assert torch.equal(forward(reloaded, batch), forward(pruned, batch))
    # saved plan file is the cumulative plan
    saved = PruningPlan.load(tmp_path / "out" / "plan.json")
    assert saved.to_dict()["remove"] == pruned.config.cascadeprune["remove"]
    # and a stock loader refuses loudly instead of silently re-initialising weights
    with pytest.raises(Exception, match="mismatch|divisible"):
        stock_auto(family).from_pretrained(tmp_path / "out")


def test_pruned_model_can_be_pruned_again_after_reload(tmp_path):
    model = tiny_model("qwen2")
    first = make_plan(model, "layers", False, 0)
    save_model(apply_plan(model, first), tmp_path / "a")
    second = PruningPlan(channels={i: {0, 1, 2} for i in range(4) if i not in first.layers})
    again = apply_plan(load_model(tmp_path / "a"), second)
    direct = apply_plan(model, first | second)
    batch = inputs(model)
    assert torch.equal(forward(again, batch), forward(direct, batch))


def test_per_layer_config_is_not_honoured_by_required_families():
    """Why load_model re-applies the plan: transformers 5.23 ignores per_layer_config for these.

    If this starts failing, transformers began honouring it and the loader can use it instead."""
    config = transformers.LlamaConfig(vocab_size=32, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2,
                                      per_layer_config={1: {"intermediate_size": 16}})
    # measured with transformers 5.23 (pinned): Llama's modeling code reads config.intermediate_size, which the
    # per-layer config makes ambiguous, so building the model refuses (it does not build layer 1 at 16 channels)
    with pytest.raises(Exception) as refused:
        transformers.AutoModelForCausalLM.from_config(config)
    assert type(refused.value).__name__ == "AmbiguousGlobalPerLayerAttributeError"
    assert "intermediate_size" in str(refused.value)


def test_interrupted_save_leaves_nothing_that_looks_valid(tmp_path, monkeypatch):
    model = apply_plan(tiny_model("gpt2"), PruningPlan(layers={1}))

    def boom(*a, **k):
        raise KeyboardInterrupt("simulated interruption")

    monkeypatch.setattr(type(model), "save_pretrained", boom)
    with pytest.raises(KeyboardInterrupt):
        save_model(model, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_kept_unless_overwrite(tmp_path, monkeypatch):
    model = tiny_model("gpt2")
    save_model(apply_plan(model, PruningPlan(layers={1})), tmp_path / "out")
    with pytest.raises(OutputExistsError, match="already exists"):
        save_model(model, tmp_path / "out")
    # a failing overwrite keeps the previous good output
    monkeypatch.setattr(save_mod, "applied_plan", lambda s: (_ for _ in ()).throw(RuntimeError("disk full")))
    with pytest.raises(RuntimeError):
        save_model(model, tmp_path / "out", overwrite=True)
    assert json.loads((tmp_path / "out" / "config.json").read_text())["n_layer"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    monkeypatch.undo()
    save_model(model, tmp_path / "out", overwrite=True)
    assert json.loads((tmp_path / "out" / "config.json").read_text())["n_layer"] == 4


def test_bad_sources_name_the_thing_at_fault(tmp_path):
    with pytest.raises(ModelSourceError, match="nope.*not found"):
        load_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelSourceError, match="empty: no config.json"):
        load_model(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{oops")
    with pytest.raises(ModelSourceError, match="config.json: corrupt JSON"):
        load_model(tmp_path / "bad")
    (tmp_path / "w.bin").write_text("x")
    with pytest.raises(ModelSourceError, match="must be .gguf"):
        load_model(tmp_path / "w.bin")
    (tmp_path / "broken.gguf").write_bytes(b"not a gguf")
    with pytest.raises(ModelSourceError, match="broken.gguf: could not read GGUF"):
        load_model(tmp_path / "broken.gguf")


def test_corrupt_weights_in_pruned_dir_are_reported(tmp_path):
    save_model(apply_plan(tiny_model("llama"), PruningPlan(layers={1}, channels={0: {1}})), tmp_path / "out")
    (tmp_path / "out" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelSourceError, match="model.safetensors: corrupt safetensors"):
        load_model(tmp_path / "out")


def test_head_count_rejected_by_config_falls_back_to_load_model(tmp_path):
    """LlamaConfig demands hidden % heads == 0 even with explicit head_dim: 8 -> 6 heads of 64."""
    model = tiny_model("llama")
    pruned = apply_plan(model, PruningPlan(heads={i: {0, 4} for i in range(4)}))  # uniform, one per group
    rec = pruned.config.cascadeprune
    assert rec["uniform"] and not rec["stock_loadable"]
    assert pruned.config.num_attention_heads == 8  # dense count kept, truth in the record
    save_model(pruned, tmp_path / "out")
    batch = inputs(model)
    assert torch.equal(forward(load_model(tmp_path / "out"), batch), forward(pruned, batch))
