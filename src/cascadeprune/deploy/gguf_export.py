"""Export a causal LM (dense or pruned, uniform or not) to GGUF for llama.cpp: ``model.gguf`` + ``deploy.json``.

Which llama.cpp architecture:

- every kept layer has the same query heads, KV heads and FFN width (layers may be removed) -> the
  family's own ``llama``: runs in every llama.cpp tool (llama-server, Ollama, LM Studio);
- per-layer widths differ -> ``deci`` (DeciLM / Nemotron-NAS), which reads head count, KV-head
  count and FFN length per layer. One head size for all layers, so ``attention.key_length``,
  ``value_length`` and ``rope.dimension_count`` are written explicitly (llama.cpp otherwise
  derives the head size from layer 0's head count). A layer whose FFN was removed entirely keeps
  one zero channel: llama.cpp's ``deci`` skips the rest of a layer with FFN length 0 (its attention
  output too), while one channel whose down-projection column is zero adds exactly nothing.

Hugging Face stores q/k rows for rotate-half RoPE; llama.cpp's llama/deci rope pairs adjacent
dimensions, so q and k rows are permuted per head, as llama.cpp's own converter does. The tokenizer
(GPT-2-style byte-level BPE: vocabulary, merges, special tokens, chat template) goes in the file;
that llama.cpp tokenizes like the Hugging Face tokenizer is checked on sample text before writing.
Quantized files (q8_0, q4_k_m) come from llama.cpp's own quantizer (``llama_model_quantize``
through llama-cpp-python).

Parity, on the LM task's test windows: llama.cpp's logits from the f16 (or f32) file against
PyTorch's: max |delta logit|, top-1 agreement (refused below 99 %) and perplexity per domain on both
sides (refused when a domain differs by more than 1 %). A quantized export records its own figures.

Beside the file, an Ollama ``Modelfile`` (``FROM``, the chat template as Ollama's ``TEMPLATE`` where it is
ChatML, ``stop`` parameters), from the written file's metadata; untested with Ollama itself.

Everything is written to a hidden sibling folder and renamed into place at the end; a model llama.cpp
cannot represent is refused before anything is written.

Example::

    info = export_gguf("runs/smollm2-2x/model", "deploy/smollm2-2x-q8", quant="q8_0")
    info["parity"]["f16"]["top1_agreement"]      # e.g. 0.998
"""

from __future__ import annotations

import datetime
import json
import math
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import numpy as np

from cascadeprune.errors import CascadePruneError, OutputExistsError

GGUF_FILE = "model.gguf"
DEPLOY_FILE = "deploy.json"
MODELFILE = "Modelfile"  # Ollama's, beside the .gguf (untested with Ollama itself: not installable here)
GGUF_FORMAT = "gguf"
QUANTS = {"f32": 0, "f16": 1, "q8_0": 7, "q4_k_m": 15}  # llama.cpp's LLAMA_FTYPE_* values
TOP1_MIN = 0.99  # f16/f32 top-1 agreement with PyTorch
PPL_REL_MAX = 0.01  # f16/f32 perplexity per domain within 1 % of PyTorch's
FAMILIES = ("llama",)  # families whose HF layout maps onto llama.cpp's llama/deci
DEFAULT_TASK = "lm@eval=16,val=1"
TOKENIZER_SAMPLE = ("Hello world! The pump's bearing at 3 hp runs 1797 rpm; check   it.\n"
                    "def f(x):\n    return x ** 2  # 12345 ünïcödé 日本語")


class GGUFExportError(CascadePruneError):
    """llama.cpp cannot represent the model, or does not reproduce it; the message says why."""


# -- what llama.cpp gets: shapes and names --------------------------------------------------------

def layer_shapes(model) -> list[dict]:
    """Per kept layer: query heads, KV heads, FFN channels (from the weights, never the config)."""
    from cascadeprune.arch.resolve import resolve

    s = resolve(model)
    return [{"layer": l.orig_index, "heads": len(l.heads), "kv_heads": len(l.kv_heads), "ffn": len(l.channels)}
            for l in s.layers]


def check_representable(model) -> dict:
    """Refuse (one line) what llama.cpp's llama/deci cannot run; return the facts the writer needs."""
    from cascadeprune.arch.resolve import resolve
    from cascadeprune.errors import UnsupportedArchitectureError

    try:
        s = resolve(model)
    except UnsupportedArchitectureError as e:
        raise GGUFExportError(f"GGUF export: {e}") from None
    cfg = model.config
    if s.family.name not in FAMILIES or getattr(cfg, "model_type", None) != "llama":
        raise GGUFExportError(f"GGUF export supports the llama family (llama.cpp's llama/deci); this model is "
                              f"{getattr(cfg, 'model_type', s.family.name)!r}")
    rope = dict(getattr(cfg, "rope_parameters", None) or {})
    rtype = rope.get("rope_type", "default")
    if rtype not in ("default", None):
        raise GGUFExportError(f"GGUF export: rope_type {rtype!r} is not written (only plain RoPE)")
    if getattr(cfg, "hidden_act", "silu") != "silu":
        raise GGUFExportError(f"GGUF export: hidden_act {cfg.hidden_act!r}; llama.cpp's llama runs SiLU only")
    shapes = layer_shapes(model)
    if any(x["heads"] and x["heads"] % max(x["kv_heads"], 1) for x in shapes):
        raise GGUFExportError("GGUF export: a layer's query heads are not a multiple of its KV heads")
    return {"shapes": shapes, "head_dim": s.dims.head_dim, "theta": float(rope.get("rope_theta",
            getattr(cfg, "rope_theta", 10000.0))), "tied": bool(getattr(cfg, "tie_word_embeddings", False))}


def _rope_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF rotate-half rows -> llama.cpp's adjacent-pair rows, per head (llama.cpp's converter does the same)."""
    if n_head == 0:
        return w
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


HF_TO_GGUF = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
              "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
              "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}


def _tensors(model, facts: dict) -> tuple[list[tuple[str, np.ndarray]], list[dict]]:
    """(gguf name, array) in file order, and the per-layer shapes written (layers with nothing left dropped)."""
    state = {k.removeprefix("model."): v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    out = [("token_embd.weight", state["embed_tokens.weight"]), ("output_norm.weight", state["norm.weight"])]
    if not facts["tied"]:
        out.append(("output.weight", state["lm_head.weight"]))
    written = []
    for i, shp in enumerate(facts["shapes"]):
        if shp["heads"] == 0 and shp["ffn"] == 0:
            continue  # the layer is the identity: nothing to write
        j = len(written)
        shp = dict(shp, ffn_written=max(shp["ffn"], 1))
        written.append(shp)
        for hf, g in HF_TO_GGUF.items():
            for kind in ("weight", "bias"):
                key = f"layers.{i}.{hf}.{kind}"
                if key not in state:
                    continue
                w = state[key]
                if hf.startswith("self_attn") or hf == "input_layernorm":
                    if shp["heads"] == 0:
                        continue  # attention-free layer
                    if hf == "self_attn.q_proj":
                        w = _rope_rows(w, shp["heads"])
                    elif hf == "self_attn.k_proj":
                        w = _rope_rows(w, shp["kv_heads"])
                elif shp["ffn"] == 0 and hf.startswith("mlp"):  # FFN removed: one zero channel (module docstring)
                    w = _zero_channel(hf, kind, w)
                out.append((f"blk.{j}.{g}.{kind}", w))
    return out, written


def _zero_channel(hf: str, kind: str, w: np.ndarray) -> np.ndarray:
    """One FFN channel that adds nothing: gate/up rows (and biases) zero, a zero down-projection column."""
    if hf == "mlp.down_proj":
        return np.zeros((w.shape[0], 1), np.float32) if kind == "weight" else w
    return np.zeros((1, w.shape[1]), np.float32) if kind == "weight" else np.zeros(1, np.float32)


# -- tokenizer ------------------------------------------------------------------------------------------

def _pre_tokenizer(tj: dict) -> str:
    """llama.cpp's name for the pre-tokenizer of a byte-level BPE tokenizer.json (verified afterwards)."""
    pre = tj.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [p.get("type") for p in parts]
    if kinds == ["Digits", "ByteLevel"] and parts[0].get("individual_digits"):
        return "smollm"
    if kinds == ["ByteLevel"] and parts[0].get("use_regex", True):
        return "gpt-2"
    raise GGUFExportError(f"GGUF export: pre-tokenizer {kinds} is not one cascadeprune maps to llama.cpp "
                          f"(byte-level BPE as GPT-2 or SmolLM uses)")


def _add_tokenizer(w, tokenizer, vocab_size: int) -> dict:
    """Write the tokenizer into the GGUF; return what deploy.json says about it."""
    import gguf

    if tokenizer.kind == "bytes":  # tiny random models: token ids only
        w.add_tokenizer_model("none")
        return {"kind": "none", "note": "token ids only (byte-level stand-in of a tiny test model)"}
    with tempfile.TemporaryDirectory() as d:
        tokenizer.save_pretrained(d)
        tj_path = Path(d, "tokenizer.json")
        if not tj_path.is_file():
            raise GGUFExportError("GGUF export: the tokenizer has no tokenizer.json (a fast tokenizer is needed)")
        tj = json.loads(tj_path.read_text())
        model = tj.get("model", {})
        if model.get("type") != "BPE" or model.get("byte_fallback") or (tj.get("decoder") or {}).get("type") != "ByteLevel":
            raise GGUFExportError(f"GGUF export: tokenizer type {model.get('type')!r} "
                                  f"{'with byte fallback (SentencePiece-style) ' if model.get('byte_fallback') else ''}"
                                  "is not supported; byte-level BPE (GPT-2 style) only")
        pre = _pre_tokenizer(tj)
        vocab = dict(model["vocab"])
        added = {t["id"]: t for t in tj.get("added_tokens", [])}
        for i, t in added.items():
            vocab.setdefault(t["content"], i)
        by_id = {i: s for s, i in vocab.items()}
        n = max(vocab_size, max(by_id) + 1)
        tokens, types = [], []
        for i in range(n):
            if i in by_id:
                tokens.append(by_id[i])
                types.append(gguf.TokenType.CONTROL if i in added and added[i].get("special") else
                             gguf.TokenType.USER_DEFINED if i in added else gguf.TokenType.NORMAL)
            else:
                tokens.append(f"[PAD{i}]")
                types.append(gguf.TokenType.UNUSED)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(pre)
        w.add_token_list(tokens)
        w.add_token_types(types)
        special = gguf.SpecialVocab(d, load_merges=True, n_vocab=n)
        if not special.merges:
            raise GGUFExportError("GGUF export: the tokenizer has no BPE merges")
        special.add_to_gguf(w, quiet=True)
        return {"kind": "gpt2", "pre": pre, "tokens": n, "merges": len(special.merges),
                "special": dict(special.special_token_ids), "chat_template": special.chat_template is not None}


# -- write, quantize, run ------------------------------------------------------------------------------

def write_gguf(model, tokenizer, path: Path, ftype: str = "f16", name: str = "model") -> dict:
    """Write ``model`` (a llama-family causal LM, pruned or not) as one GGUF file; return what was written."""
    import gguf

    facts = check_representable(model)
    cfg = model.config
    tensors, shapes = _tensors(model, facts)
    uniform = len({(s["heads"], s["kv_heads"], s["ffn_written"]) for s in shapes}) <= 1 and \
        all(s["heads"] and s["ffn"] for s in shapes)
    arch = "llama" if uniform else "deci"
    hd = facts["head_dim"]
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(name)
    w.add_context_length(int(getattr(cfg, "max_position_embeddings", 2048)))
    w.add_embedding_length(int(cfg.hidden_size))
    w.add_block_count(len(shapes))
    if uniform and shapes:
        w.add_feed_forward_length(shapes[0]["ffn_written"])
        w.add_head_count(shapes[0]["heads"])
        w.add_head_count_kv(shapes[0]["kv_heads"])
    else:
        w.add_feed_forward_length([s["ffn_written"] for s in shapes])
        w.add_head_count([s["heads"] for s in shapes])
        w.add_head_count_kv([s["kv_heads"] for s in shapes])
    w.add_key_length(hd)
    w.add_value_length(hd)
    w.add_rope_dimension_count(hd)
    w.add_rope_freq_base(facts["theta"])
    w.add_layer_norm_rms_eps(float(cfg.rms_norm_eps))
    w.add_vocab_size(int(cfg.vocab_size))
    w.add_file_type(QUANTS[ftype])
    tok = _add_tokenizer(w, tokenizer, int(cfg.vocab_size))
    np_type = np.float16 if ftype == "f16" else np.float32
    for tname, arr in tensors:
        arr = np.ascontiguousarray(arr.astype(np_type if arr.ndim == 2 else np.float32))
        w.add_tensor(tname, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return {"arch": arch, "uniform": uniform, "head_dim": hd, "layers": shapes, "tokenizer": tok}


def quantize(src: Path, dst: Path, quant: str, threads: int = 1) -> None:
    """llama.cpp's own quantizer (through llama-cpp-python), not a hand-written one."""
    import ctypes

    import llama_cpp
    from llama_cpp._utils import suppress_stdout_stderr

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANTS[quant]
    params.nthread = threads
    with suppress_stdout_stderr(disable=False):
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0 or not dst.is_file():
        raise GGUFExportError(f"llama.cpp's quantizer failed ({quant}, code {rc})")


def open_gguf(path: Path, n_ctx: int, threads: int = 1, vocab_only: bool = False, kv_f32: bool = False):
    """A llama-cpp-python model with every position's logits kept (for parity and perplexity).
    ``kv_f32``: keep the KV cache in f32 (llama.cpp's default is f16, as deployed)."""
    from llama_cpp import Llama

    from llama_cpp._utils import suppress_stdout_stderr

    kv = {"type_k": 0, "type_v": 0} if kv_f32 else {}  # GGML_TYPE_F32
    try:
        with suppress_stdout_stderr(disable=False):  # llama.cpp's context notes go to stderr even when not verbose
            return Llama(model_path=str(path), n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, logits_all=not vocab_only,
                         vocab_only=vocab_only, verbose=False, n_threads=threads, n_threads_batch=threads, seed=0,
                         **kv)
    except (ValueError, RuntimeError) as e:
        raise GGUFExportError(f"llama.cpp could not load {path.name}: {e}") from None


def _nll(logits: np.ndarray, ids: np.ndarray) -> tuple[float, int]:
    x = logits[:-1].astype(np.float64)
    m = x.max(1, keepdims=True)
    lse = (m[:, 0] + np.log(np.exp(x - m).sum(1)))
    return float((lse - x[np.arange(len(x)), ids[1:]]).sum()), len(x)


def compare(model, windows: dict, files: dict[str, Path], threads: int = 1, kv_f32: bool = False) -> dict:
    """Per file: max |delta logit| and top-1 agreement vs PyTorch, and perplexity per domain on both sides.

    ``windows``: domain -> LongTensor [n, seq] (the task's test windows)."""
    import torch

    seq = int(next(iter(windows.values())).shape[1])
    llms = {q: open_gguf(p, seq, threads, kv_f32=kv_f32) for q, p in files.items()}
    stats = {q: {"max_abs_logit_diff": 0.0, "agree": 0, "positions": 0, "nll": {}} for q in files}
    torch_nll = {}
    for d, w in windows.items():
        t_tot, n_tot = 0.0, 0
        q_tot = {q: 0.0 for q in files}
        refs = []
        for i, row in enumerate(w):
            if i % 8 == 0:  # PyTorch in batches of 8 windows; llama.cpp one window at a time (its own context)
                with torch.no_grad():
                    refs = list(model(input_ids=w[i : i + 8], use_cache=False).logits.float().numpy())
            ref = refs[i % 8]
            ids = row.numpy().astype(np.int64)
            nll, n = _nll(ref, ids)
            t_tot, n_tot = t_tot + nll, n_tot + n
            for q, llm in llms.items():
                llm.reset()
                llm.eval(ids.tolist())
                got = np.asarray(llm.scores[: len(ids)], dtype=np.float32)
                s = stats[q]
                s["max_abs_logit_diff"] = max(s["max_abs_logit_diff"], float(np.abs(got - ref).max()))
                s["agree"] += int((got.argmax(1) == ref.argmax(1)).sum())
                s["positions"] += len(ids)
                q_tot[q] += _nll(got, ids)[0]
        torch_nll[d] = t_tot / n_tot
        for q in files:
            stats[q]["nll"][d] = q_tot[q] / n_tot
    for llm in llms.values():
        llm.close()
    out = {"torch": {"perplexity_per_domain": {d: math.exp(v) for d, v in torch_nll.items()},
                     "perplexity": math.exp(sum(torch_nll.values()) / len(torch_nll))}}
    for q, s in stats.items():
        ppl = {d: math.exp(v) for d, v in s["nll"].items()}
        out[q] = {"max_abs_logit_diff": s["max_abs_logit_diff"], "top1_agreement": s["agree"] / s["positions"],
                  "positions": s["positions"], "perplexity_per_domain": ppl,
                  "perplexity": math.exp(sum(s["nll"].values()) / len(s["nll"])),
                  "perplexity_rel_diff_per_domain": {d: ppl[d] / out["torch"]["perplexity_per_domain"][d] - 1
                                                     for d in ppl}}
    return out


def check_tokenizer(path: Path, tokenizer) -> dict | None:
    """llama.cpp's tokenization of sample text against the Hugging Face tokenizer's (None: ids only)."""
    if tokenizer.kind == "bytes":
        return None
    llm = open_gguf(path, 64, vocab_only=True)
    got = llm.tokenize(TOKENIZER_SAMPLE.encode(), add_bos=False, special=False)
    llm.close()
    ref = tokenizer.encode(TOKENIZER_SAMPLE)
    if list(got) != list(ref):
        raise GGUFExportError(f"llama.cpp tokenizes differently from the Hugging Face tokenizer ({len(got)} vs "
                              f"{len(ref)} tokens on a sample); the tokenizer is not exported faithfully")
    return {"sample_tokens": len(ref), "equal": True}


# -- Ollama ------------------------------------------------------------------------------------------------

# ChatML in Ollama's Go template language: the layout of a Jinja template with <|im_start|> / <|im_end|>
CHATML_TEMPLATE = ("{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
                   "{{ range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
                   "<|im_start|>assistant\n")


def modelfile(path: Path) -> str:
    """An Ollama ``Modelfile`` for the GGUF at ``path``, from the file's own metadata: ``FROM`` the file beside
    it; a ChatML chat template (``<|im_start|>`` / ``<|im_end|>``, SmolLM2's) as Ollama's Go ``TEMPLATE``; a
    ``PARAMETER stop`` for ``<|im_end|>`` and for the end-of-sequence token. Another Jinja template is not
    translated (a comment says so); a file with no tokenizer gets ``FROM`` only."""
    import gguf

    r = gguf.GGUFReader(str(path))

    def field(name):
        f = r.get_field(name)
        return None if f is None else f.contents()

    lines = ["# Ollama Modelfile written by `cascadeprune export --format gguf` (untested with Ollama itself)",
             f"FROM ./{path.name}"]
    template, tokens = field("tokenizer.chat_template"), field("tokenizer.ggml.tokens")
    stops = []
    if template and "<|im_start|>" in template and "<|im_end|>" in template:
        lines.append(f'TEMPLATE """{CHATML_TEMPLATE}"""')
        stops.append("<|im_end|>")
    elif template:
        lines.append("# the file's chat template is not ChatML: not translated to Ollama's template language")
    else:
        lines.append("# no chat template in the file")
    eos = field("tokenizer.ggml.eos_token_id")
    if tokens and eos is not None and 0 <= int(eos) < len(tokens):
        stops.append(tokens[int(eos)])
    for s in dict.fromkeys(stops):
        lines.append(f"PARAMETER stop {json.dumps(s)}")
    return "\n".join(lines) + "\n"


# -- the command --------------------------------------------------------------------------------------------

def _log(msg: str, progress: bool) -> None:
    if progress:
        print(f"export: {msg}", file=sys.stderr, flush=True)


def _refuse_parity(fig: dict, base: str) -> None:
    worst = max(abs(v) for v in fig["perplexity_rel_diff_per_domain"].values())
    if fig["top1_agreement"] < TOP1_MIN or worst > PPL_REL_MAX:
        raise GGUFExportError(f"llama.cpp ({base}) does not reproduce PyTorch: top-1 agreement "
                              f"{fig['top1_agreement']:.2%} (need >= {TOP1_MIN:.0%}), perplexity off by up to "
                              f"{worst:.2%} (limit {PPL_REL_MAX:.0%}); nothing was written")


def export_gguf(source: str | Path, out: str | Path, quant: str = "f16", overwrite: bool = False,
                task: str | None = None, threads: int = 1, progress: bool = True) -> dict:
    """Export ``source`` (a compressed LM directory, a Hugging Face llama directory, a .gguf or a built-in
    name) to ``out/model.gguf`` + ``out/deploy.json``, checked against PyTorch; return deploy.json's dict."""
    from cascadeprune.deploy.export import source_digest
    from cascadeprune.storage import load_model
    from cascadeprune.storage.save import swap_into_place
    from cascadeprune.tasks import get_task, task_kind

    if quant not in QUANTS:
        raise CascadePruneError(f"--quant {quant!r}: choose one of {', '.join(QUANTS)}")
    task = task or DEFAULT_TASK
    if task_kind(task) != "lm":
        raise CascadePruneError(f"--task {task!r}: a GGUF export is checked on an lm task (e.g. {DEFAULT_TASK})")
    src, out = Path(str(source)), Path(out)
    if src.exists() and (out.resolve() == src.resolve() or src.resolve() in out.resolve().parents):
        raise CascadePruneError(f"--out {out} would write into the input model {source}; choose another directory")
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise OutputExistsError(f"{out} already exists and is not empty; choose another --out or pass --overwrite")
    try:
        import gguf  # noqa: F401
        import llama_cpp  # noqa: F401
    except ModuleNotFoundError as e:
        raise CascadePruneError(f"GGUF export needs {e.name}: pip install 'cascadeprune[gguf]'") from None
    model = load_model(source).eval()
    check_representable(model)  # before the task reads data, and before anything is written
    the_task = get_task(task, model, source=str(source))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
    except OSError as e:
        raise CascadePruneError(f"cannot write --out {out}: {e.strerror or e}") from None
    try:
        base = "f32" if quant == "f32" else "f16"
        base_file = tmp / (GGUF_FILE if quant == base else f"model.{base}.gguf")
        _log(f"writing {base} GGUF of {source}", progress)
        written = write_gguf(model, the_task.tokenizer, base_file, base, name=_name(src))
        tok_check = check_tokenizer(base_file, the_task.tokenizer)
        files = {base: base_file}
        if quant != base:
            _log(f"quantizing to {quant} with llama.cpp", progress)
            quantize(base_file, tmp / GGUF_FILE, quant, threads)
            files[quant] = tmp / GGUF_FILE
        n = sum(len(w) for w in the_task.windows["test"].values())
        _log(f"checking parity with PyTorch on {n} test windows of {task}", progress)
        parity = compare(model, the_task.windows["test"], files, threads)
        _refuse_parity(parity[base], base)
        parity["windows"], parity["task"] = n, task
        parity["limits"] = {"top1_min": TOP1_MIN, "perplexity_rel_max": PPL_REL_MAX, "applies_to": base}
        if quant != base:
            base_file.unlink()  # the deployed file is the quantized one
        digest = _digest(src, source_digest)
        (tmp / MODELFILE).write_text(modelfile(tmp / GGUF_FILE))
        info = {
            "format": GGUF_FORMAT, "file": GGUF_FILE, "modelfile": MODELFILE, "quant": quant, "arch": written["arch"],
            "uniform": written["uniform"], "head_dim": written["head_dim"], "layers": written["layers"],
            "tokenizer": written["tokenizer"] | {"check": tok_check},
            "source": {"model": str(source), "path": str(src.resolve()) if src.exists() else None, "sha256": digest},
            "parity": parity, "file_mb": round((tmp / GGUF_FILE).stat().st_size / 2**20, 3),
            "versions": _versions(),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        (tmp / DEPLOY_FILE).write_text(json.dumps(info, indent=2) + "\n")
        swap_into_place(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return info


def _digest(src: Path, source_digest) -> str | None:
    """sha256 of the source: a directory's files, a .gguf file's bytes, or a built-in's shipped file."""
    import hashlib

    from cascadeprune.storage.sources import PRETRAINED

    if not src.exists() and str(src) in PRETRAINED:
        src = PRETRAINED[str(src)]()
    if src.is_dir():
        return source_digest(src)
    if src.is_file():
        h = hashlib.sha256()
        with open(src, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()
    return None  # a tiny-* random model: its seed is its source


def _name(src: Path) -> str:
    p = src.resolve() if src.exists() else src
    while p.parent != p and (p.name in ("model", "checkpoints") or p.name.startswith("stage-")):
        p = p.parent
    return p.stem or "model"


def _versions() -> dict:
    import gguf
    import llama_cpp
    import torch

    return {"torch": torch.__version__, "gguf": getattr(gguf, "__version__", "0.19.0"),
            "llama_cpp_python": llama_cpp.__version__}
