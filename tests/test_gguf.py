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
    assert sorted(p.name for p in out.iterdir()) == ["Modelfile", "deploy.json", "model.gguf"]
    assert info["modelfile"] == "Modelfile"
    assert (out / "Modelfile").read_text().splitlines()[1:] == ["FROM ./model.gguf", "# no chat template in the file"]
    assert "top-1 agreement" in capsys.readouterr().out


def test_q8_0_runs(tmp_path):
    m, src = _lm_dir(tmp_path, NONUNIFORM, "pruned")
    out = tmp_path / "q8"
    assert main(["export", str(src), "--format", "gguf", "--quant", "q8_0", "--out", str(out), "--task", TASK]) == 0
    info = json.loads((out / "deploy.json").read_text())
    assert info["quant"] == "q8_0" and set(info["parity"]) >= {"f16", "q8_0", "torch"}
    assert info["parity"]["q8_0"]["top1_agreement"] > 0.8
    assert sorted(p.name for p in out.iterdir()) == ["Modelfile", "deploy.json", "model.gguf"]  # no f16 file left
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
    for r in recs:  # what the model memory holds, from llama.cpp's own log; where a token's time goes
        assert r["weights_mb"] > 0 and r["kv_cache_mb"] > 0 and r["compute_buffer_mb"] > 0
        assert r["output_buffer_mb"] >= 0 and r["kv_k_mb"] >= 0 and r["kv_v_mb"] >= 0  # 2 decimals: ~0 here
        assert r["n_ctx"] >= 128 + 64 and r["flash_attn"] == "disabled" and r["kv_v_padded_to"] is None
        assert r["other_mem_mb"] == pytest.approx(r["model_mem_mb"] - r["weights_mb"] - r["kv_cache_mb"]
                                                  - r["compute_buffer_mb"] - r["output_buffer_mb"])
        assert r["tg_decode_ms"] > 0 and r["tg_token_ms"] >= r["tg_decode_ms"]
        assert r["tg_host_ms"] == pytest.approx(r["tg_token_ms"] - r["tg_decode_ms"])
        assert r["file_layout"]["blocks"] == 3 and r["file_layout"]["blocks_mb"] > 0
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


def test_parse_llama_log_reports_missing_as_none():
    from cascadeprune.deploy.gguf_bench import parse_llama_log

    d = parse_llama_log("load_tensors:   CPU_Mapped model buffer size =   258.34 MiB\n"
                        "load_tensors:   CPU_REPACK model buffer size =    10.50 MiB\n"
                        "sched_reserve:        CPU compute buffer size =     5.00 MiB\n"
                        "sched_reserve:        CPU compute buffer size =     7.25 MiB\n")  # reserved twice: the last
    assert d["weights_mb"] == pytest.approx(268.84)
    assert d["weights_buffers"] == {"CPU_Mapped": 258.34, "CPU_REPACK": 10.5}
    assert d["compute_buffer_mb"] == 7.25
    assert d["kv_cache_mb"] is None and d["kv_k_mb"] is None and d["output_buffer_mb"] is None
    assert d["flash_attn"] is None and d["kv_v_padded_to"] is None
    assert all(v is None for k, v in parse_llama_log("").items())


def test_kv_cache_k_per_layer_v_padded_without_flash_attention(tmp_path):
    """docs/gguf.md's finding, measured: with per-layer KV heads (deci), llama.cpp sizes K per layer and,
    flash attention off (llama-cpp-python's default), pads every layer's V to the widest; with it on, V too is
    per layer. KV heads per kept layer here: 1, 2, 1 (head size 8), so at 65,536 cells in f16 one KV head is
    1 MiB: K = 4 MiB; V = 3 x 2 = 6 MiB padded, 4 MiB per layer."""
    import llama_cpp

    from cascadeprune.deploy.gguf_bench import LlamaLog, parse_llama_log
    from cascadeprune.deploy.gguf_export import write_gguf

    m = apply_plan(tiny_model("llama"), NONUNIFORM)
    f = tmp_path / "deci.gguf"
    info = write_gguf(m, ByteTokenizer(128), f, "f16")
    assert info["arch"] == "deci" and [x["kv_heads"] for x in info["layers"]] == [1, 2, 1]
    got = {}
    for fa in (False, True):
        with LlamaLog() as log:
            llm = llama_cpp.Llama(model_path=str(f), n_ctx=65536, n_batch=16, n_ubatch=16, verbose=False,
                                  flash_attn=fa)
        llm.close()
        got[fa] = parse_llama_log(log.text)
    assert (got[False]["kv_k_mb"], got[False]["kv_v_mb"], got[False]["kv_v_padded_to"]) == (4.0, 6.0, 16)
    assert (got[True]["kv_k_mb"], got[True]["kv_v_mb"], got[True]["kv_v_padded_to"]) == (4.0, 4.0, None)
    assert got[False]["kv_cache_mb"] == 10.0 and got[False]["flash_attn"] == "disabled"


def test_modelfile_from_the_files_metadata(tmp_path):
    """The Modelfile says what the GGUF's metadata says: a ChatML template becomes Ollama's ChatML TEMPLATE,
    <|im_end|> and the end-of-sequence token become stop parameters; another template is not translated."""
    import gguf

    from cascadeprune.deploy.gguf_export import CHATML_TEMPLATE, modelfile

    chatml = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
              "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
              "{% endif %}")
    for name, template, tokens, eos in (("chatml", chatml, ["a", "<|im_end|>", "b"], 1),
                                        ("other", "{{ bos_token }}{{ messages[0]['content'] }}", ["a", "</s>"], 1)):
        f = tmp_path / f"{name}.gguf"
        w = gguf.GGUFWriter(str(f), "llama")
        w.add_tokenizer_model("gpt2")
        w.add_token_list(tokens)
        w.add_eos_token_id(eos)
        w.add_chat_template(template)
        w.add_tensor("token_embd.weight", np.zeros((len(tokens), 4), np.float32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        r = gguf.GGUFReader(str(f))
        assert r.get_field("tokenizer.chat_template").contents() == template
        text = modelfile(f)
        assert text.splitlines()[1] == f"FROM ./{name}.gguf"
        eos_tok = r.get_field("tokenizer.ggml.tokens").contents()[r.get_field("tokenizer.ggml.eos_token_id").contents()]
        stops = [ln.split(" ", 2)[2] for ln in text.splitlines() if ln.startswith("PARAMETER stop")]
        if name == "chatml":
            assert f'TEMPLATE """{CHATML_TEMPLATE}"""' in text
            assert stops == ['"<|im_end|>"'] and eos_tok == "<|im_end|>"  # the same token once
        else:
            assert "TEMPLATE" not in text and "not ChatML" in text
            assert stops == [json.dumps(eos_tok)] == ['"</s>"']
