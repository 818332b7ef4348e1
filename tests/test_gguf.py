"""GGUF export for llama.cpp: uniform plans as `llama`, per-layer widths as `deci`, logits equal to PyTorch,
llama.cpp's own quantizer, refusals with nothing half-written, and `bench` of a GGUF artifact.

Tolerance: an f32 file read with an f32 KV cache gives PyTorch's logits within 1e-4 (measured ~2e-6);
llama.cpp's default f16 KV cache and f16 weights are judged by the export's own parity figures.
Under CI=true these tests never skip: a missing llama-cpp-python fails them."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

try:
    import gguf  # noqa: F401
    import llama_cpp  # noqa: F401
except ModuleNotFoundError:
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("GGUF tests need the [gguf] extra (gguf, llama-cpp-python)", allow_module_level=True)

from cascadeprune.cli import main
from cascadeprune.deploy.gguf_export import open_gguf
from cascadeprune.plan import PruningPlan
from cascadeprune.storage import save_model
from cascadeprune.storage.sources import tiny_model
from cascadeprune.surgery import apply_plan
from cascadeprune.tasks.lm.tokenizer import ByteTokenizer

TASK = "lm:prose,code@seq=32,eval=3,val=1"
UNIFORM = PruningPlan(layers={1}, heads={i: {0, 4} for i in (0, 2, 3)},
                      channels={i: set(range(0, 96, 4)) for i in (0, 2, 3)})
# different query heads, KV heads and FFN widths per layer, one layer removed
NONUNIFORM = PruningPlan(layers={1}, heads={0: {0, 1, 2, 3}, 2: {1, 5}, 3: {4, 5, 6, 7}},
                         channels={0: set(range(30)), 2: set(range(0, 96, 2))})


def _lm_dir(tmp_path, plan, name):
    m = apply_plan(tiny_model("llama"), plan)
    d = save_model(m, tmp_path / name)
    ByteTokenizer(m.config.vocab_size).save_pretrained(d)  # as compress saves a tiny model's tokenizer
    return m, d


def _max_diff(model, gguf_file) -> float:
    ids = torch.randint(0, 128, (24,), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = model(input_ids=ids[None]).logits[0].numpy()
    llm = open_gguf(gguf_file, 32, kv_f32=True)
    llm.eval(ids.tolist())
    got = np.asarray(llm.scores[:24])
    llm.close()
    return float(np.abs(got - ref).max())


@pytest.mark.parametrize("plan, arch", [(UNIFORM, "llama"), (NONUNIFORM, "deci")])
def test_export_matches_pytorch(tmp_path, capsys, plan, arch):
    m, src = _lm_dir(tmp_path, plan, "pruned")
    out = tmp_path / "gguf"
    assert main(["export", str(src), "--format", "gguf", "--quant", "f32", "--out", str(out), "--task", TASK]) == 0
    info = json.loads((out / "deploy.json").read_text())
    assert info["format"] == "gguf" and info["arch"] == arch and info["quant"] == "f32"
    assert [(x["heads"], x["kv_heads"], x["ffn"]) for x in info["layers"]] == \
        [(len(l.self_attn.q_proj.weight) // 8, len(l.self_attn.k_proj.weight) // 8, len(l.mlp.up_proj.weight))
         for l in m.model.layers]
    assert len(info["layers"]) == 3 and info["source"]["sha256"]
    assert info["parity"]["f32"]["top1_agreement"] >= 0.99
    for d, v in info["parity"]["f32"]["perplexity_per_domain"].items():
        assert v == pytest.approx(info["parity"]["torch"]["perplexity_per_domain"][d], rel=1e-2)
    assert _max_diff(m, out / "model.gguf") < 1e-4
    assert sorted(p.name for p in out.iterdir()) == ["deploy.json", "model.gguf"]
    assert "top-1 agreement" in capsys.readouterr().out


def test_q8_0_runs(tmp_path):
    m, src = _lm_dir(tmp_path, NONUNIFORM, "pruned")
    out = tmp_path / "q8"
    assert main(["export", str(src), "--format", "gguf", "--quant", "q8_0", "--out", str(out), "--task", TASK]) == 0
    info = json.loads((out / "deploy.json").read_text())
    assert info["quant"] == "q8_0" and set(info["parity"]) >= {"f16", "q8_0", "torch"}
    assert info["parity"]["q8_0"]["top1_agreement"] > 0.8
    assert sorted(p.name for p in out.iterdir()) == ["deploy.json", "model.gguf"]  # no f16 file left
    llm = open_gguf(out / "model.gguf", 32)
    llm.eval([1, 2, 3])
    assert np.isfinite(np.asarray(llm.scores[:3])).all()


def _nothing_written(tmp_path, out):
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial folder left


def test_refusals_exit_2_nothing_written(tmp_path, capsys):
    out = tmp_path / "x"
    assert main(["export", "tiny-gpt2", "--format", "gguf", "--out", str(out), "--task", TASK]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "llama family" in err and "gpt2" in err
    _nothing_written(tmp_path, out)
    assert main(["export", str(tmp_path / "missing"), "--format", "gguf", "--out", str(out)]) == 2
    assert "not found" in capsys.readouterr().err
    _nothing_written(tmp_path, out)
    assert main(["export", "tiny-llama", "--format", "gguf", "--quant", "q3", "--out", str(out)]) == 2
    assert "--quant" in capsys.readouterr().err
    assert main(["export", "tiny-llama", "--format", "gguf", "--int8", "--out", str(out)]) == 2
    assert "--int8 is for ONNX" in capsys.readouterr().err
    _nothing_written(tmp_path, out)
    # a model directory without a tokenizer: refused, never given a byte-level one silently
    import transformers

    from cascadeprune.storage.sources import TINY_CONFIGS

    big_vocab = transformers.LlamaForCausalLM(transformers.LlamaConfig(**dict(TINY_CONFIGS["llama"][1], vocab_size=512)))
    plain = save_model(big_vocab, tmp_path / "plain")
    assert main(["export", str(plain), "--format", "gguf", "--out", str(out), "--task", TASK]) == 2
    assert "has no tokenizer" in capsys.readouterr().err
    _nothing_written(tmp_path, out)


def test_existing_out_kept(tmp_path, capsys):
    out = tmp_path / "gguf"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["export", "tiny-llama", "--format", "gguf", "--out", str(out), "--task", TASK]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_bench_returns_every_key(tmp_path, capsys):
    from cascadeprune.deploy.gguf_bench import KEYS

    _, src = _lm_dir(tmp_path, UNIFORM, "pruned")
    out = tmp_path / "gguf"
    assert main(["export", str(src), "--format", "gguf", "--out", str(out), "--task", TASK]) == 0
    capsys.readouterr()
    assert main(["bench", str(out), str(out / "model.gguf"), "--runs", "1", "--threads", "1", "--json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert len(recs) == 2
    for r in recs:
        assert set(KEYS) <= set(r) and r["pp_tok_s"] > 0 and r["tg_tok_s"] > 0 and r["model_mem_mb"] >= 0
        assert r["peak_rss_mb"] >= r["base_rss_mb"] and r["file_mb"] > 0
    assert recs[0]["quant"] == "f16" and recs[0]["ppl_mean"] > 1 and recs[1]["quant"] is None
    assert recs[1]["vs_first"]["file_mb"] == pytest.approx(1.0)
    assert main(["bench", str(out), "--breakdown"]) == 2
    assert "--breakdown is for ONNX" in capsys.readouterr().err


def test_biases_are_written(tmp_path):
    """FLAP-style bias compensation turns on attention_bias / mlp_bias: llama and deci carry the biases."""
    import transformers

    from cascadeprune.deploy.gguf_export import write_gguf
    from cascadeprune.storage.sources import TINY_CONFIGS

    torch.manual_seed(0)
    dense = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        **TINY_CONFIGS["llama"][1], attention_bias=True, mlp_bias=True)).eval()
    with torch.no_grad():
        for n, p in dense.named_parameters():
            if n.endswith("bias"):
                p.normal_(0, 0.1)
    for plan, arch in ((PruningPlan(layers={1}), "llama"), (NONUNIFORM, "deci")):
        m = apply_plan(dense, plan)
        f = tmp_path / f"{arch}.gguf"
        assert write_gguf(m, ByteTokenizer(128), f, "f32")["arch"] == arch
        assert _max_diff(m, f) < 1e-4


def test_serve_points_a_gguf_export_to_llama_cpp(tmp_path):
    from cascadeprune.deploy.runtime import read_deploy
    from cascadeprune.errors import CascadePruneError

    (tmp_path / "deploy.json").write_text(json.dumps({"format": "gguf", "file": "model.gguf"}))
    with pytest.raises(CascadePruneError, match="llama_cpp.server"):
        read_deploy(tmp_path)


def test_parity_limits_refuse():
    from cascadeprune.deploy.gguf_export import GGUFExportError, _refuse_parity

    ok = {"top1_agreement": 0.995, "perplexity_rel_diff_per_domain": {"prose": 0.004, "code": -0.009}}
    _refuse_parity(ok, "f16")
    for bad in ({**ok, "top1_agreement": 0.98}, {**ok, "perplexity_rel_diff_per_domain": {"prose": -0.02}}):
        with pytest.raises(GGUFExportError, match="nothing was written"):
            _refuse_parity(bad, "f16")


@pytest.mark.parametrize("tj, why", [
    ({"model": {"type": "Unigram", "vocab": []}, "decoder": {"type": "Metaspace"}}, "byte-level BPE"),
    ({"model": {"type": "BPE", "byte_fallback": True, "vocab": {}, "merges": []}, "decoder": {"type": "Sequence"}},
     "byte fallback"),
    ({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "decoder": {"type": "ByteLevel"},
      "pre_tokenizer": {"type": "Metaspace"}}, "pre-tokenizer")])
def test_tokenizers_llama_cpp_cannot_take_are_refused(tmp_path, tj, why):
    """SentencePiece-style and unmapped tokenizers: refused with one line, never written half-right."""
    import gguf

    from cascadeprune.deploy.gguf_export import GGUFExportError, _add_tokenizer

    class Tok:
        kind = "hf"

        def save_pretrained(self, d):
            (tmp_path / "saved").mkdir(exist_ok=True)
            open(f"{d}/tokenizer.json", "w").write(json.dumps(tj))

    w = gguf.GGUFWriter(str(tmp_path / "x.gguf"), "llama")
    with pytest.raises(GGUFExportError, match=why):
        _add_tokenizer(w, Tok(), 128)
