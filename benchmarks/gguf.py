"""SmolLM2-135M in llama.cpp: dense and compressed at 1.5x and 2x, f16 / q8_0 / q4_k_m, 1 and 2 threads.

A thin driver of the CLI (``cascadeprune compress``, ``export --format gguf``, ``bench``), in one run:

    python -m benchmarks.gguf --list        # the models it picks from results/lm.jsonl, and every command; runs nothing
    python -m benchmarks.gguf               # compress (re-running the picked records' commands), export, bench, append
    python -m benchmarks.gguf --table       # the Markdown table of results/gguf.jsonl beside the targets

Which compressed models (the rule, fixed before any GGUF figure is read): at each ratio, among the
records of ``results/lm.jsonl`` for smollm2-135m with recovery (``recovery_steps > 0``) and a clean
provenance, the method with the lowest mean over seeds of its final validation perplexity (the last
stage's ``val_perplexity_recovered``; choose on validation, report on test), seed 42's command re-run.
The uniform-layout variant is the same rule among the methods that only remove whole layers
(``shortgpt``, ``shortgpt+budget``: every kept layer keeps its widths, so llama.cpp's ``llama`` runs it),
and the per-layer variant the same rule among every other method (written as ``deci``); a model picked
twice runs once.

Every artifact is benched in its own process (``cascadeprune bench``), dense and compressed in one call
per thread count, so ratios compare like with like. Records (one per model, quant and threads) go to
``results/gguf.jsonl``: model, method, ratio, quant, threads, ppl_mean (llama.cpp, the export's test
windows), pp_tok_s, tg_tok_s, peak_rss_mb, model_mem_mb, file_mb, with provenance.

Targets (the issue's, side by side, same quant and threads): at 2x, generation tokens/s >= 1.5x dense and
model memory >= 35 % lower; the compressed q4_k_m model against dense f16: >= 3x generation tokens/s and
>= 75 % less model memory. Physical limits at 2x on the blocks: about 1.65x fewer FLOPs per token and 40 %
fewer weights (the tied 49,152 x 576 embedding is a fixed cost).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks._common import append_records, load_records, provenance, record_status

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "gguf.jsonl"
LM_RESULTS = HERE / "results" / "lm.jsonl"
RUNS = HERE / "runs" / "gguf"
MODEL = "smollm2-135m"
TASK = "lm@seq=64,eval=16,val=4"  # the lm.py table's task: the export's parity windows
QUANTS = ("f16", "q8_0", "q4_k_m")
THREADS = (1, 2)
UNIFORM_METHODS = ("shortgpt", "shortgpt+budget")
TARGETS = {"tg_vs_dense_same_quant_2x": 1.5, "model_mem_cut_same_quant_2x": 0.35,
           "tg_q4_vs_dense_f16_2x": 3.0, "model_mem_cut_q4_vs_dense_f16_2x": 0.75}
LIMITS = {"flops_per_token_2x": 1.65, "weights_cut_2x": 0.40}


def _val(rec: dict) -> float | None:
    st = rec.get("stages") or []
    return st[-1].get("val_perplexity_recovered") if st else None


def pick(recs: list[dict], ratio: float, methods: tuple[str, ...] | None = None) -> dict | None:
    """The rule in the module docstring: (method, mean final val perplexity, seed-42 record)."""
    by_method: dict[str, list[dict]] = {}
    for r in recs:
        if (r.get("model") == MODEL and r.get("ratio_target") == ratio and (r.get("recovery_steps") or 0) > 0
                and record_status(r) == "ok" and _val(r) is not None
                and (methods is None or r["method"] in methods)):
            by_method.setdefault(r["method"], []).append(r)
    scored = [(statistics.mean(_val(r) for r in rs), m, rs) for m, rs in by_method.items()
              if any(r["seed"] == 42 for r in rs)]
    if not scored:
        return None
    val, method, rs = min(scored, key=lambda x: x[0])
    rec = next(r for r in rs if r["seed"] == 42)
    return {"method": method, "val_perplexity_mean": val, "seeds": len(rs), "ratio": ratio, "record": rec}


def plan(recs: list[dict], ratios=(1.5, 2.0)) -> list[dict]:
    """The models of the run: dense, and per ratio the pick and its uniform-layout variant."""
    out = [{"name": "dense", "method": "dense", "ratio": 1.0, "source": MODEL, "compress": None}]
    for ratio in ratios:
        methods = sorted({r["method"] for r in recs} - set(UNIFORM_METHODS))
        picks = [(pick(recs, ratio), "best"), (pick(recs, ratio, UNIFORM_METHODS), "uniform"),
                 (pick(recs, ratio, tuple(methods)), "nonuniform")]
        seen = set()
        for p, tag in picks:
            if p is None or p["method"] in seen:
                continue
            seen.add(p["method"])
            name = f"{p['method']}-{ratio:g}"
            cmd = shlex.split(p["record"]["command"])
            out_i = cmd.index("--out")
            cmd[out_i + 1] = str(RUNS / name / "compressed")
            out.append({"name": name, "method": p["method"], "ratio": ratio, "pick": tag,
                        "val_perplexity_mean": p["val_perplexity_mean"], "seeds": p["seeds"],
                        "source": str(RUNS / name / "compressed" / "model"), "compress": cmd})
    return out


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "cascadeprune.cli", *args]


def export_cmd(m: dict, quant: str) -> list[str]:
    return _cli("export", m["source"], "--format", "gguf", "--quant", quant, "--task", TASK, "--threads", "2",
                "--out", str(RUNS / m["name"] / quant), "--overwrite", "--json")


def bench_cmd(artifacts: list[str], threads: int) -> list[str]:
    return _cli("bench", *artifacts, "--threads", str(threads), "--runs", "5", "--json")


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    print("$ " + shlex.join(cmd), file=sys.stderr, flush=True)
    child = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                           env=dict(os.environ, HF_HUB_OFFLINE="1", TQDM_DISABLE="1"))
    if child.returncode != 0:
        raise SystemExit(f"FAILED: {shlex.join(cmd)}\n{child.stderr[-3000:]}")
    return child


def run(models: list[dict], argv: list[str], results: Path) -> list[dict]:
    for m in models:
        if m["compress"]:
            _run(_cli(*m["compress"][1:]) + ["--overwrite"] * ("--overwrite" not in m["compress"]))
        for q in QUANTS:
            _run(export_cmd(m, q))
    arts = [(m, q, str(RUNS / m["name"] / q)) for m in models for q in QUANTS]
    recs = []
    for threads in THREADS:  # one bench call per thread count: every artifact, each in a fresh process
        bench = json.loads(_run(bench_cmd([a for _, _, a in arts], threads)).stdout)
        for (m, q, _), b in zip(arts, bench):
            recs.append({"benchmark": "gguf", "model": MODEL, "method": m["method"], "ratio": m["ratio"],
                         "pick": m.get("pick"), "quant": q, "threads": threads, "arch": b["arch"],
                         "ppl_mean": b["ppl_mean"], "ppl_per_domain": b["ppl_per_domain"],
                         "pp_tok_s": b["pp_tok_s"], "tg_tok_s": b["tg_tok_s"], "ttft_ms": b["ttft_ms"],
                         "peak_rss_mb": b["peak_rss_mb"], "model_mem_mb": b["model_mem_mb"], "file_mb": b["file_mb"],
                         "task": TASK, "runs": b["runs"], "compress_command": shlex.join(m["compress"] or []),
                         **provenance("gguf", argv)})
    return append_records(results, recs)


def table(recs: list[dict]) -> str:
    """Each figure beside its target and the physical limit, same quant and threads."""
    dense = {(r["quant"], r["threads"]): r for r in recs if r["method"] == "dense"}
    rows = ["| model | ratio | quant | threads | arch | ppl | pp tok/s | gen tok/s | gen vs dense (same quant) | "
            "model MB | model MB cut vs dense | file MB | gen vs dense f16 | model MB cut vs dense f16 |",
            "|" + "---|" * 14]
    for r in sorted(recs, key=lambda r: (r["threads"], r["ratio"], r["method"], QUANTS.index(r["quant"]))):
        d, d16 = dense.get((r["quant"], r["threads"])), dense.get(("f16", r["threads"]))
        tg = r["tg_tok_s"] / d["tg_tok_s"] if d else None
        cut = 1 - r["model_mem_mb"] / d["model_mem_mb"] if d else None
        tg16 = r["tg_tok_s"] / d16["tg_tok_s"] if d16 else None
        cut16 = 1 - r["model_mem_mb"] / d16["model_mem_mb"] if d16 else None
        at2 = r["ratio"] == 2.0
        t = (f" (target >= {TARGETS['tg_vs_dense_same_quant_2x']}x, limit ~{LIMITS['flops_per_token_2x']}x)"
             if at2 else "")
        c = f" (target >= {TARGETS['model_mem_cut_same_quant_2x']:.0%}, limit ~{LIMITS['weights_cut_2x']:.0%})" if at2 else ""
        q4 = at2 and r["quant"] == "q4_k_m"
        rows.append(
            f"| {r['method']} | {r['ratio']:g} | {r['quant']} | {r['threads']} | {r.get('arch') or '–'} | "
            f"{r['ppl_mean']:.2f} | {r['pp_tok_s']:.0f} | {r['tg_tok_s']:.1f} | "
            f"{'–' if tg is None else f'{tg:.2f}x'}{t} | {r['model_mem_mb']:.0f} | "
            f"{'–' if cut is None else f'{cut:.0%}'}{c} | {r['file_mb']:.0f} | "
            f"{'–' if tg16 is None else f'{tg16:.2f}x'}{' (target >= 3x)' if q4 else ''} | "
            f"{'–' if cut16 is None else f'{cut16:.0%}'}{' (target >= 75%)' if q4 else ''} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ratios", nargs="+", type=float, default=[1.5, 2.0])
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--list", action="store_true", help="print the picked models and every command; run nothing")
    ap.add_argument("--table", action="store_true", help="print the table of --results and stop")
    args = ap.parse_args()
    if args.table:
        print(table(load_records(args.results)))
        return
    models = plan(load_records(LM_RESULTS), tuple(args.ratios))
    if args.list:
        for m in models:
            why = (f" ({m['pick']}: mean final val perplexity {m['val_perplexity_mean']:.1f} over {m['seeds']} seed(s))"
                   if m.get("pick") else "")
            print(f"{m['name']}: {m['method']} at {m['ratio']:g}x{why}")
            if m["compress"]:
                print("  " + shlex.join(m["compress"]))
            for q in QUANTS:
                print("  " + shlex.join(export_cmd(m, q)[1:]).replace("-m cascadeprune.cli", "cascadeprune"))
        arts = [str(RUNS / m["name"] / q) for m in models for q in QUANTS]
        for t in THREADS:
            print(shlex.join(bench_cmd(arts, t)[1:]).replace("-m cascadeprune.cli", "cascadeprune"))
        return
    recs = run(models, sys.argv[1:], args.results)
    print(table(recs))


if __name__ == "__main__":
    main()
