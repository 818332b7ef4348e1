"""Speed and memory of GGUF artifacts in llama.cpp, each in a fresh process, side by side.

Per artifact (an export directory from ``cascadeprune export --format gguf``, or a ``.gguf`` file), a
child process (``python -m cascadeprune.deploy.gguf_bench '{...}'``) imports llama-cpp-python,
initialises llama.cpp's backend and reads its resident memory (the runtime with no model), then
loads the model and, ``runs`` times after one warm-up: evaluates a 128-token prompt (prompt
processing, tokens/s), picks the first token greedily (time to first token = prompt + first pick),
and generates 64 more tokens one at a time (generation, tokens/s). Medians over the runs. Peak RSS
is the whole process's (VmHWM); model memory = peak minus the runtime-only reading. The prompt is
the same token ids for every artifact (a fixed text where the file has a tokenizer). Neither torch
nor transformers is imported in the child.

What the model memory holds: llama.cpp logs the buffers it allocates while loading (the weights'
model buffers, the KV cache with its K and V parts, the compute buffer, the logits' output buffer);
the child captures that log (llama.cpp's log callback) and returns the figures in MiB
(``weights_mb``, ``kv_cache_mb``, ``kv_k_mb``, ``kv_v_mb``, ``compute_buffer_mb``,
``output_buffer_mb``, with ``n_ctx`` and ``flash_attn``); a figure the log does not carry is None,
never a guess, and ``other_mem_mb`` (model memory minus the buffers) is None unless all four are
there. Where the time of a generated token goes: ``tg_token_ms`` (wall time per token, sampling
included) and ``tg_decode_ms`` (llama.cpp's own decode time per token, its perf counters), the rest
(``tg_host_ms``) being the greedy pick over the vocabulary and the Python binding.

Example::

    recs = bench_gguf(["deploy/dense-f16", "deploy/2x-q4_k_m"], threads=2)
    print(gguf_table(recs))      # ratios against the first
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

from cascadeprune.deploy.bench import _num, run_worker
from cascadeprune.errors import CascadePruneError

PROMPT_TOKENS = 128
GEN_TOKENS = 64
KEYS = ("pp_tok_s", "tg_tok_s", "ttft_ms", "peak_rss_mb", "base_rss_mb", "model_mem_mb", "file_mb", "threads",
        "runs", "quant", "arch", "ppl_mean")
# what llama.cpp says it allocated (MiB, from its log; None where the log has no such line)
MEM_KEYS = ("weights_mb", "kv_cache_mb", "kv_k_mb", "kv_v_mb", "compute_buffer_mb", "output_buffer_mb", "n_ctx",
            "other_mem_mb")
TIME_KEYS = ("tg_token_ms", "tg_decode_ms", "tg_host_ms")
PROMPT_TEXT = ("The bearing on the drive end of the pump showed a rising vibration level at the ball pass "
               "frequency of the outer race. The technician checked the lubrication, measured the shaft "
               "alignment and recorded the temperature before replacing the seal. ")


def gguf_file(path: str | Path) -> Path | None:
    """The .gguf an artifact names (an export directory's model file, or the file itself), else None."""
    p = Path(path)
    if p.is_file() and p.suffix == ".gguf":
        return p
    info = p / "deploy.json"
    if info.is_file():
        try:
            d = json.loads(info.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        if d.get("format") == "gguf":
            f = p / d.get("file", "model.gguf")
            if not f.is_file():
                raise CascadePruneError(f"{f}: missing (the GGUF export is incomplete)")
            return f
    return None


def bench_one(path: str | Path, threads: int = 1, runs: int = 3, timeout: float = 1800) -> dict:
    """Measure one GGUF artifact in a fresh process; return its record."""
    if gguf_file(path) is None:
        raise CascadePruneError(f"{path} is not a GGUF artifact (a .gguf file or a `cascadeprune export --format "
                                f"gguf` directory)")
    for name, v in (("threads", threads), ("runs", runs)):
        if v < 1:
            raise CascadePruneError(f"--{name} must be >= 1, got {v}")
    return run_worker("cascadeprune.deploy.gguf_bench", {"path": str(path), "threads": threads, "runs": runs}, path,
                      timeout, env=dict(os.environ, OMP_NUM_THREADS=str(threads)))


def bench_gguf(paths, threads: int = 1, runs: int = 3, progress: bool = True) -> list[dict]:
    """One record per artifact, one after the other, each in its own process; ratios against the first."""
    for p in paths:
        if gguf_file(p) is None:
            raise CascadePruneError(f"{p} is not a GGUF artifact; bench GGUF and ONNX artifacts in separate calls")
    out = []
    for i, p in enumerate(paths, 1):
        if progress:
            print(f"bench [{i}/{len(paths)}] {p} (llama.cpp, {threads} thread(s), {PROMPT_TOKENS}-token prompt, "
                  f"{GEN_TOKENS} generated, {runs} run(s))", file=sys.stderr, flush=True)
        out.append(bench_one(p, threads, runs))
    base = out[0]
    for rec in out:
        rec["vs_first"] = {k: (rec[k] / base[k] if base.get(k) and rec.get(k) is not None else None)
                           for k in ("pp_tok_s", "tg_tok_s", "ttft_ms", "peak_rss_mb", "model_mem_mb", "file_mb")}
    return out


def gguf_table(recs: list[dict]) -> str:
    """A Markdown table: one row per artifact, ratios against the first."""
    head = ("| artifact | arch | quant | threads | prompt tok/s | gen tok/s | TTFT ms | peak RSS MB | model MB | file MB "
            "| ppl | gen vs first | model MB vs first |")
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in recs:
        v = r.get("vs_first", {})
        name = Path(r["path"]).name
        rows.append(f"| {name} | {r['arch'] or '–'} | {r['quant'] or '–'} | {r['threads']} | {r['pp_tok_s']:.1f} | "
                    f"{r['tg_tok_s']:.1f} | {r['ttft_ms']:.1f} | {r['peak_rss_mb']:.0f} | {r['model_mem_mb']:.1f} | "
                    f"{r['file_mb']:.1f} | {_num(r.get('ppl_mean'), '.2f')} | {_num(v.get('tg_tok_s'), '.2f')}x | "
                    f"{_num(v.get('model_mem_mb'), '.2f')}x |")
    return "\n".join(rows)


# -- what llama.cpp allocated: its own log -------------------------------------------------------------------

_MIB = r"=\s*([0-9]+(?:\.[0-9]+)?) MiB"
_LOG_BUFFERS = {  # key -> a line llama.cpp (llama-model.cpp, llama-kv-cache.cpp, llama-context.cpp) logs at load
    "weights_mb": re.compile(r"(\S+) model buffer size\s*" + _MIB),
    "kv_cache_mb": re.compile(r"(\S+) KV buffer size\s*" + _MIB),
    "compute_buffer_mb": re.compile(r"(\S+) compute buffer size\s*" + _MIB),
    "output_buffer_mb": re.compile(r"(\S+)\s+output buffer size\s*" + _MIB),
}
_LOG_KV = re.compile(r"llama_kv_cache: size\s*=.*?\(\s*(\d+) cells,\s*(\d+) layers.*?K \((\w+)\):\s*([0-9.]+) MiB, "
                     r"V \((\w+)\):\s*([0-9.]+) MiB")
_LOG_PAD = re.compile(r"padding V cache to (\d+)")
_LOG_FA = re.compile(r"flash_attn\s*=\s*(\w+)")


def parse_llama_log(text: str) -> dict:
    """The buffer sizes (MiB) in a llama.cpp load log. Per buffer kind, the sum over buffer types of the last
    size logged for each (llama.cpp may reserve the compute buffer more than once); None where no line matched.

    Also: ``weights_buffers`` (model buffer per buffer type, e.g. CPU_Mapped / CPU_REPACK), the KV cache's
    K and V parts and types, cells and layers, ``kv_v_padded_to`` (the V width llama.cpp pads every layer
    to when KV widths differ and flash attention is off; None when it does not) and ``flash_attn``."""
    out: dict = {}
    for key, rx in _LOG_BUFFERS.items():
        per = {}
        for name, mib in rx.findall(text):
            per[name] = float(mib)
        out[key] = sum(per.values()) if per else None
        if key == "weights_mb":
            out["weights_buffers"] = per or None
    kv = _LOG_KV.findall(text)
    if kv:
        cells, layers, tk, k, tv, v = kv[-1]
        out.update(kv_cells=int(cells), kv_layers=int(layers), kv_k_type=tk, kv_k_mb=float(k), kv_v_type=tv,
                   kv_v_mb=float(v))
    else:
        out.update(kv_cells=None, kv_layers=None, kv_k_type=None, kv_k_mb=None, kv_v_type=None, kv_v_mb=None)
    pad = _LOG_PAD.findall(text)
    out["kv_v_padded_to"] = int(pad[-1]) if pad else None
    fa = _LOG_FA.findall(text)
    out["flash_attn"] = fa[-1] if fa else None
    return out


class LlamaLog:
    """Collect llama.cpp's log (every level) while the block runs; ``text`` afterwards. llama-cpp-python's own
    callback is put back on exit.

    Example: ``with LlamaLog() as log: llm = Llama(...)``, then ``parse_llama_log(log.text)``."""

    def __enter__(self):
        import ctypes

        import llama_cpp

        self._parts: list[str] = []

        @llama_cpp.llama_log_callback
        def _cb(level, text, user_data):
            self._parts.append(text.decode("utf-8", "replace"))

        self._cb = _cb  # a reference, or ctypes frees the callback while llama.cpp still holds it
        llama_cpp.llama_log_set(self._cb, ctypes.c_void_p(0))
        return self

    def __exit__(self, *exc):
        import ctypes

        import llama_cpp
        from llama_cpp import _logger

        llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
        return False

    @property
    def text(self) -> str:
        return "".join(self._parts)


def file_layout(path: str | Path) -> dict:
    """Bytes of the weights in a GGUF file by role: the token embedding and output head (tied or not), the
    blocks (``blk.*``) and the rest (norms), with the head's llama.cpp type. Read from the file's tensor table."""
    import gguf

    r = gguf.GGUFReader(str(path))
    emb = head = blocks = rest = 0
    head_type = emb_type = None
    n_blocks = set()
    for t in r.tensors:
        n = int(t.n_bytes)
        if t.name == "token_embd.weight":
            emb, emb_type = n, t.tensor_type.name
        elif t.name == "output.weight":
            head, head_type = n, t.tensor_type.name
        elif t.name.startswith("blk."):
            blocks += n
            n_blocks.add(int(t.name.split(".")[1]))
        else:
            rest += n
    tied = head == 0
    return {"embedding_mb": emb / 2**20, "head_mb": (emb if tied else head) / 2**20, "tied": tied,
            "head_type": emb_type if tied else head_type, "blocks_mb": blocks / 2**20, "other_tensors_mb": rest / 2**20,
            "blocks": len(n_blocks)}


# -- the child process -----------------------------------------------------------------------------------

def _prompt(llm, n: int) -> list[int]:
    ids = []
    if llm.metadata.get("tokenizer.ggml.model", "none") != "none":  # llama.cpp aborts tokenizing with no tokenizer
        ids = list(llm.tokenize((PROMPT_TEXT * 8).encode(), add_bos=False, special=False))
    if len(ids) < n:
        vocab = llm.n_vocab()
        ids = [(7919 * i + 13) % vocab for i in range(n)]
    return ids[:n]


def measure(path: str, threads: int, runs: int) -> dict:
    import statistics

    import llama_cpp

    from cascadeprune.memory import peak_rss_mb, rss_mb

    f = gguf_file(path)
    info = {}
    if Path(path).is_dir():
        info = json.loads((Path(path) / "deploy.json").read_text())
    llama_cpp.llama_backend_init()
    base = rss_mb()  # the runtime, no model
    t0 = time.perf_counter()
    with LlamaLog() as log:  # llama.cpp logs every buffer it allocates; verbose=False only silences stderr
        llm = llama_cpp.Llama(model_path=str(f), n_ctx=PROMPT_TOKENS + GEN_TOKENS + 16, n_batch=PROMPT_TOKENS,
                              n_ubatch=PROMPT_TOKENS, n_threads=threads, n_threads_batch=threads, verbose=False,
                              seed=0)
    load_s = time.perf_counter() - t0
    mem = parse_llama_log(log.text)
    prompt = _prompt(llm, PROMPT_TOKENS)
    pp, tg, ttft, dec = [], [], [], []
    for i in range(runs + 1):  # the first run is the warm-up
        llm.reset()
        t = time.perf_counter()
        llm.eval(prompt)
        t_pp = time.perf_counter() - t
        tok = llm.sample(top_k=1, temp=0.0)
        t_first = time.perf_counter() - t
        llama_cpp.llama_perf_context_reset(llm.ctx)  # llama.cpp's own decode time of the generated tokens
        t = time.perf_counter()
        for _ in range(GEN_TOKENS):
            llm.eval([tok])
            tok = llm.sample(top_k=1, temp=0.0)
        t_tg = time.perf_counter() - t
        perf = llama_cpp.llama_perf_context(llm.ctx)
        if i:
            pp.append(PROMPT_TOKENS / t_pp)
            tg.append(GEN_TOKENS / t_tg)
            ttft.append(1000 * t_first)
            if perf.n_eval == GEN_TOKENS and perf.t_eval_ms > 0:  # else llama.cpp counted them otherwise: no figure
                dec.append(perf.t_eval_ms / perf.n_eval)
    peak = peak_rss_mb()
    model_mem = peak - base
    parts = [mem[k] for k in ("weights_mb", "kv_cache_mb", "compute_buffer_mb", "output_buffer_mb")]
    token_ms = 1000 / statistics.median(tg)
    decode_ms = statistics.median(dec) if len(dec) == runs else None
    par = info.get("parity") or {}
    quant = info.get("quant")
    return {"path": str(path), "runtime": "llama.cpp", "llama_cpp_python": llama_cpp.__version__,
            "arch": info.get("arch"), "quant": quant, "threads": threads, "runs": runs,
            "prompt_tokens": PROMPT_TOKENS, "gen_tokens": GEN_TOKENS,
            "pp_tok_s": statistics.median(pp), "tg_tok_s": statistics.median(tg), "ttft_ms": statistics.median(ttft),
            "peak_rss_mb": peak, "base_rss_mb": base, "model_mem_mb": model_mem, "load_s": load_s,
            "file_mb": f.stat().st_size / 2**20, "n_ctx": llm.n_ctx(), **mem,
            "other_mem_mb": None if None in parts else model_mem - sum(parts),
            "tg_token_ms": token_ms, "tg_decode_ms": decode_ms,
            "tg_host_ms": None if decode_ms is None else token_ms - decode_ms,
            "file_layout": file_layout(f),
            "ppl_mean": (par.get(quant) or {}).get("perplexity"),
            "ppl_per_domain": (par.get(quant) or {}).get("perplexity_per_domain")}


def main() -> int:
    args = json.loads(sys.argv[1])
    from cascadeprune.errors import CascadePruneError as Err

    try:
        rec = measure(**args)
    except Err as e:
        print(json.dumps({"error": str(e)}))
        return 2
    print(json.dumps(rec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
