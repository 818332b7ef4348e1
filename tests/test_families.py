"""Every family of the architecture table, and families recognised without an entry (issue 21).

Per family, on a tiny random config (seconds): physical removal equals masking within 1e-5 for a
uniform and a non-uniform mixed plan (layers, heads, channels), the pruned model reloads
identically (non-uniform with ``load_model``; uniform with the stock Auto class where the config
can express it), and cached greedy generation of decoders equals masking. Recognition: a family
deliberately left out of the table is recognised from its layout and verified; an unknown layout
and an ambiguous one are refused with a message naming the mismatch.
"""

from __future__ import annotations

import json
import logging

import pytest
import torch
import transformers

from cascadeprune import (
    PruningPlan, UnsupportedArchitectureError, apply_plan, load_model, mask_plan, resolve, save_model,
)
from cascadeprune.accounting import block_params, predict_block_params
from cascadeprune.arch import recognise as rec
from cascadeprune.arch.table import FAMILIES, register
from cascadeprune.inspection import inspect_model
from cascadeprune.storage.sources import CORE, ENCODERS, TINY_CONFIGS, tiny_model
from conftest import forward, greedy_masked_and_pruned, inputs, make_plan

TOL = 1e-5
ALL = sorted(TINY_CONFIGS)
# Whether a uniform mixed plan (layers, heads, channels) reloads with stock from_pretrained: the
# config must hold the new head count (an explicit head_dim key the modeling code reads, and a
# config validation that accepts it). The README's table states the same.
STOCK_UNIFORM_WITH_HEADS = {
    "bert": False, "cohere": True, "distilbert": False, "gemma": True, "gemma2": True, "gemma3_text": True,
    "gpt2": False, "gpt_neox": False, "llama": True, "mistral": True, "olmo2": True, "opt": False, "phi": False,
    "phi3": True,
    "qwen2": True, "qwen3": True, "roberta": False, "starcoder2": True,
}


def mixed_plan(model, uniform: bool, seed: int) -> PruningPlan:
    """Layers, heads and channels; layers and channels only where the family refuses heads (OLMo-2)."""
    plan = make_plan(model, "mixed", uniform, seed)
    return PruningPlan(plan.layers, {}, plan.channels) if resolve(model).family.heads_refused else plan


def stock_auto(model):
    return transformers.AutoModelForCausalLM if resolve(model).family.causal else transformers.AutoModel


def check_equivalence_and_reload(model, tmp_path, stock_expected: bool | None = None):
    batch = inputs(model)
    dense = forward(model, batch)
    for uniform in (True, False):
        plan = mixed_plan(model, uniform, seed=1)
        with mask_plan(model, plan):
            masked = forward(model, batch)
        pruned = apply_plan(model, plan)
        out = forward(pruned, batch)
        assert (out - masked).abs().max().item() <= TOL
        assert (dense - masked).abs().max().item() > 1e-3  # not vacuous
        assert block_params(pruned) == predict_block_params(model, plan) < block_params(model)
        path = tmp_path / ("uniform" if uniform else "nonuniform")
        save_model(pruned, path)
        assert torch.equal(forward(load_model(path), batch), out)
        stock = pruned.config.cascadeprune["stock_loadable"]
        if uniform and stock_expected is not None:
            assert stock == stock_expected
        if stock:
            assert torch.equal(forward(stock_auto(model).from_pretrained(path).eval(), batch), out)
        if not uniform:
            assert not stock


@pytest.mark.parametrize("family", ALL)
def test_family_pruned_equals_masked_and_reloads(family, tmp_path):
    model = tiny_model(family, 0)
    check_equivalence_and_reload(model, tmp_path, STOCK_UNIFORM_WITH_HEADS[family])
    # without head changes every family's uniform result loads with the stock Auto class
    plan = make_plan(model, "mixed", uniform=True, seed=1)
    pruned = apply_plan(model, PruningPlan(plan.layers, {}, plan.channels))
    assert pruned.config.cascadeprune["stock_loadable"]
    save_model(pruned, tmp_path / "layers_channels")
    batch = inputs(model)
    assert torch.equal(forward(stock_auto(model).from_pretrained(tmp_path / "layers_channels").eval(), batch),
                       forward(pruned, batch))


@pytest.mark.parametrize("family", ALL)
def test_family_pruned_equals_masked_with_eager_attention(family):
    """Eager attention reads every head-count attribute (SDPA's GQA path may not): the table's
    attention attributes must all be right."""
    model = tiny_model(family, 1)
    model.config._attn_implementation = "eager"
    plan = mixed_plan(model, uniform=False, seed=4)
    batch = inputs(model, 4)
    with mask_plan(model, plan):
        masked = forward(model, batch)
    assert (forward(apply_plan(model, plan), batch) - masked).abs().max().item() <= TOL


@pytest.mark.parametrize("family", sorted(set(ALL) - ENCODERS - {"llama", "mistral", "qwen2", "gpt2", "gpt_neox"}))
def test_new_decoder_cached_generation_equals_masked(family):
    model = tiny_model(family, 3)
    plan = mixed_plan(model, uniform=False, seed=3)
    ref, got = greedy_masked_and_pruned(model, plan, 6)
    assert torch.equal(ref.sequences, got.sequences)
    assert max((a - b).abs().max().item() for a, b in zip(ref.logits, got.logits)) <= TOL


def test_every_declared_family_has_a_tiny_config_and_inspects():
    assert set(FAMILIES) == set(TINY_CONFIGS)
    for family in ALL:
        info = inspect_model(tiny_model(family))
        assert info["spec"] == "declared" and info["family"] == family


def test_fused_layouts_slice_the_right_rows():
    """Phi-3: [q | k | v] with GQA and [gate | up] shrink block by block; Cohere's (heads, head_dim)
    norms go with their heads."""
    # a whole KV group and two channels
    phi3 = apply_plan(tiny_model("phi3"), PruningPlan(heads={0: {0, 1, 2, 3}}, channels={0: {0, 5}}))
    l = resolve(phi3).layers[0]
    assert l.qkv.out_features == (4 + 2 * 1) * 8 and l.gate_up.out_features == 2 * 94
    assert l.attention.config.num_attention_heads == 4 and phi3.config.num_attention_heads == 8
    cohere = apply_plan(tiny_model("cohere"), PruningPlan(heads={1: {0, 1}}))  # D = 2: KV head 0 goes
    l = resolve(cohere).layers[1]
    assert l.q_norm.weight.shape == (6, 8) and l.k_norm.weight.shape == (3, 8)


@pytest.fixture
def fresh_recognition():
    rec.RECOGNISED.clear()
    yield
    rec.RECOGNISED.clear()


def tiny(config_cls: str, auto=transformers.AutoModelForCausalLM, **kw):
    base = dict(vocab_size=64, hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=48,
                max_position_embeddings=64, initializer_range=0.1)
    torch.manual_seed(0)
    return auto.from_config(getattr(transformers, config_cls)(**(base | kw))).eval()


RECOGNISABLE = {  # model_type left out of the table -> (config class, Auto class, extra config, layout it matches)
    "granite": ("GraniteConfig", transformers.AutoModelForCausalLM, dict(num_key_value_heads=2), "llama"),
    "xlm-roberta": ("XLMRobertaConfig", transformers.AutoModel, dict(pad_token_id=1, max_position_embeddings=66),
                    "bert"),
    "electra": ("ElectraConfig", transformers.AutoModel, dict(embedding_size=16), "bert"),
    "camembert": ("CamembertConfig", transformers.AutoModel, dict(pad_token_id=1, max_position_embeddings=66), "bert"),
    # per-layer no_rope_layers list: follows the kept layers, so a stock reload after layer removal is exact
    "smollm3": ("SmolLM3Config", transformers.AutoModelForCausalLM,
                dict(num_key_value_heads=2, pad_token_id=0, bos_token_id=0, eos_token_id=0), "llama"),
    "olmo": ("OlmoConfig", transformers.AutoModelForCausalLM,  # parameter-free LayerNorms
             dict(num_key_value_heads=2, pad_token_id=0, bos_token_id=0, eos_token_id=0), "llama"),
    # OLMo-2's layout (q/k norm over all heads): recognised with heads refused, layers and channels exact
    "olmo3": ("Olmo3Config", transformers.AutoModelForCausalLM, dict(num_key_value_heads=2, pad_token_id=0,
                                                                     bos_token_id=0, eos_token_id=0), "olmo2"),
}


@pytest.mark.parametrize("model_type", sorted(RECOGNISABLE))
def test_unlisted_family_is_recognised_verified_and_prunes_exactly(model_type, fresh_recognition, tmp_path, caplog):
    cls, auto, kw, layout = RECOGNISABLE[model_type]
    assert model_type not in FAMILIES
    model = tiny(cls, auto, **kw)
    with caplog.at_level(logging.WARNING, logger="cascadeprune.arch.recognise"):
        info = inspect_model(model)
        resolve(model)  # built once: no second notice
    notices = [r.getMessage() for r in caplog.records]
    assert len(notices) == 1 and model_type in notices[0] and "recognised" in notices[0]
    assert info["spec"].startswith("recognised (layout of ") and layout in info["spec"]
    check_equivalence_and_reload(model, tmp_path)


def test_recognition_in_a_fresh_process():
    """The package imports lazily: recognition must work when nothing but resolve was touched."""
    import subprocess
    import sys

    code = ("import torch, transformers, cascadeprune as cp; torch.manual_seed(0); "
            "c = transformers.GraniteConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, "
            "num_key_value_heads=2, intermediate_size=48); "
            "print(cp.resolve(transformers.AutoModelForCausalLM.from_config(c)).family.origin)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "recognised (layout of gemma, llama, mistral, qwen2)"
    assert "granite: not in cascadeprune.arch.table.FAMILIES; recognised" in out.stderr


def test_family_deliberately_left_out_is_recognised(monkeypatch, fresh_recognition):
    monkeypatch.delitem(FAMILIES, "mistral")
    model = tiny_model("mistral")
    s = resolve(model)
    assert s.family.name == "mistral" and s.family.origin.startswith("recognised") and "llama" in s.family.origin
    assert s.family.layout() == FAMILIES["llama"].layout()


def test_unknown_layout_is_refused_naming_the_mismatch(fresh_recognition):
    # GPT-J: attention and fc_in/fc_out MLP in parallel under `h`, q/k/v without biases; no entry, no layout
    model = transformers.AutoModelForCausalLM.from_config(transformers.GPTJConfig(
        vocab_size=64, n_embd=32, n_layer=2, n_head=4, rotary_dim=4, n_positions=64)).eval()
    with pytest.raises(UnsupportedArchitectureError) as e:
        resolve(model)
    msg = str(e.value)
    assert "'gptj'" in msg and "matches none of the known layouts" in msg and "cascadeprune.arch.table.FAMILIES" in msg
    # per layout, the first thing that did not match: GPT-J has GPT-2's keys and `attn`, not its c_proj
    assert "gpt2: no o module at 'attn.c_proj' in a layer" in msg
    assert "gemma/llama/mistral/qwen2: config has no integer 'num_key_value_heads'" in msg


def test_full_width_qk_norm_refuses_heads_but_prunes_layers_and_channels():
    """OLMo-2: a q/k norm over all heads at once makes heads inseparable: refused, named, model untouched."""
    from cascadeprune import PlanError

    model = tiny_model("olmo2")
    with pytest.raises(PlanError, match=r"\[heads-refused\] olmo2: heads cannot be removed: its q/k RMSNorm spans"):
        apply_plan(model, PruningPlan(heads={0: {0, 1}}))
    assert resolve(model).layers[0].q.out_features == 64
    # and the reason is real: slicing the norm weight with the head would not equal masking
    batch = inputs(model)
    with mask_plan(model, PruningPlan(heads={0: {0, 1}})):
        masked = forward(model, batch)
    l = resolve(model).layers[0]
    with torch.no_grad():  # the naive cut: drop KV group 0 from q/k/v/o and both norms
        from cascadeprune.surgery.slicing import keep_inputs, keep_outputs, keep_rows
        keep_outputs(l.q, range(32, 64), "linear"), keep_rows(l.q_norm, range(32, 64))
        keep_outputs(l.k, range(16, 32), "linear"), keep_rows(l.k_norm, range(16, 32))
        keep_outputs(l.v, range(16, 32), "linear"), keep_inputs(l.o, range(32, 64), "linear")
        l.attention.num_key_value_groups = 2
        naive = forward(model, batch)
    assert (naive - masked).abs().max().item() > 1e-3


def test_ambiguous_layout_is_refused(monkeypatch, fresh_recognition):
    # a second entry with Llama's module paths but other attention attributes: two layouts fit granite
    other = FAMILIES["llama"].__class__(**{**FAMILIES["llama"].__dict__, "name": "other", "attn_attrs": {}})
    monkeypatch.setitem(FAMILIES, "other", other)
    with pytest.raises(UnsupportedArchitectureError, match=r"'granite'.*ambiguous.*llama.*and other"):
        resolve(tiny("GraniteConfig", num_key_value_heads=2))


def test_candidate_that_fails_verification_is_refused(monkeypatch, fresh_recognition):
    # the only layout left with Llama's paths swaps q_proj and o_proj: every path exists, every
    # parameter is described and the shapes agree (hidden = heads x head_dim), but the cut is wrong
    for name in [n for n, s in FAMILIES.items() if s.layout() == FAMILIES["llama"].layout()]:
        monkeypatch.delitem(FAMILIES, name)
    broken = FAMILIES["qwen3"].__class__(**{**FAMILIES["qwen3"].__dict__, "name": "broken", "q_norm": None,
                                            "k_norm": None, "q": "self_attn.o_proj", "o": "self_attn.q_proj"})
    monkeypatch.setitem(FAMILIES, "broken", broken)
    with pytest.raises(UnsupportedArchitectureError, match=r"'granite'.*pruning did not equal masking"):
        resolve(tiny("GraniteConfig", num_key_value_heads=2))
    assert "granite" not in rec.RECOGNISED


def test_register_a_recognised_layout_explicitly():
    """What the refusal message advises: one table entry, no code."""
    import dataclasses

    register("granite", dataclasses.replace(FAMILIES["llama"], name="granite"))
    try:
        assert resolve(tiny("GraniteConfig", num_key_value_heads=2)).family.origin == "declared"
    finally:
        del FAMILIES["granite"]


@pytest.mark.parametrize("family", sorted(set(ALL) - set(CORE)))
def test_new_layouts_feed_statistics_and_criteria(family):
    """Calibration hooks and every criterion read the new layouts (fused [q|k|v] with GQA, fused [gate|up],
    per-head norms): one score per kept head and channel, gradients included."""
    from cascadeprune.calib import collect
    from cascadeprune.importance import names, score

    model = tiny_model(family)
    g = torch.Generator().manual_seed(0)
    batches = [torch.randint(2, model.config.vocab_size, (2, 8), generator=g) for _ in range(2)]

    def loss(m, ids):  # decoders: LM loss; encoders: any scalar of the output
        out = m(input_ids=ids, labels=ids) if resolve(m).family.causal else m(input_ids=ids)
        return out.loss if resolve(m).family.causal else out[0].pow(2).mean()

    stats = collect(model, batches, loss_fn=loss, gradients=True)
    s = resolve(model)
    for granularity, width in (("heads", s.dims.num_heads), ("channels", s.dims.intermediate_size)):
        for criterion in names(granularity):
            scores = score(granularity, criterion, stats)
            assert all(len(scores[l.orig_index]) == width for l in s.layers), (granularity, criterion)
            assert all(torch.isfinite(scores[l.orig_index]).any() for l in s.layers), (granularity, criterion)


def test_cli_inspect_says_declared_or_recognised(tmp_path, capsys, fresh_recognition):
    from cascadeprune.cli import main

    tiny("GraniteConfig", num_key_value_heads=2).save_pretrained(tmp_path / "granite")
    assert main(["inspect", str(tmp_path / "granite")]) == 0
    assert "spec recognised (layout of gemma, llama, mistral, qwen2)" in capsys.readouterr().out
    assert main(["inspect", "tiny-phi3", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["spec"] == "declared" and info["ffn"]["gated"] and not info["tied_embeddings"]
