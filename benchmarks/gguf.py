"""SmolLM2-135M in llama.cpp: dense and compressed at 1.5x and 2x, f16 / q8_0 / q4_k_m, 1 and 2 threads.

A thin driver of the CLI (``cascadeprune compress``, ``export --format gguf``, ``bench``), in one run:

    python -m benchmarks.gguf --list        # the models it picks from results/lm.jsonl, and every command; runs nothing
    python -m benchmarks.gguf               # compress (re-running the picked records' commands), export, bench, append
    python -m benchmarks.gguf --table       # the Markdown table of results/gguf.jsonl beside the targets
    python -m benchmarks.gguf --breakdown   # where the time and the memory go (below); appends kind=breakdown_* records

Which compressed models (the rule, fixed before any GGUF figure is read): at each ratio, among the
records of ``results/lm.jsonl`` for smollm2-135m with recovery (``recovery_steps > 0``) and a clean
provenance, the method with the lowest mean over seeds of its final validation perplexity (the last
stage's ``val_perplexity_recovered``; choose on validation, report on test), seed 42's command re-run.
Changed on 2026-12-06, before any 1.5x GGUF figure existed and for cost only (re-running auto at 1.5x takes ~30 min
on 2 cores): when the directory a picked method's ``benchmarks.lm`` record wrote still holds its model and its
report's test perplexity equals the record's, that model is exported as it is (seed 42's first, else the newest
seed's), and the record says so (``reused_run``, ``seed``); otherwise seed 42's command is re-run as before.
The uniform-layout variant is the same rule among the methods that only remove whole layers
(``shortgpt``, ``shortgpt+budget``, ``shortgpt+auto-recipe``: every kept layer keeps its widths, so llama.cpp's ``llama`` runs it),
and the per-layer variant the same rule among every other method (written as ``deci``); a model picked
twice runs once.

Every artifact is benched in its own process (``cascadeprune bench``), dense and compressed in one call
per thread count, so ratios compare like with like; the table compares each record with the dense record of its
own run (same commit and command), never across runs. Records (one per model, quant and threads) go to
``results/gguf.jsonl``: model, method, ratio, quant, threads, ppl_mean (llama.cpp, the export's test
windows), pp_tok_s, tg_tok_s, peak_rss_mb, model_mem_mb, file_mb, with provenance.

Targets (the issue's, side by side, same quant and threads): at 2x, generation tokens/s >= 1.5x dense and
model memory >= 35 % lower; the compressed q4_k_m model against dense f16: >= 3x generation tokens/s and
>= 75 % less model memory. Physical limits at 2x on the blocks: about 1.65x fewer FLOPs per token and 40 %
fewer weights (the tied 49,152 x 576 embedding is a fixed cost).

``--breakdown``: where a generated token's time and the model memory go, measured (the main table misses
the targets; this says why). From the dense model, the library's own plan and surgery (``apply_plan``)
build the model with its first k blocks kept, k in {1, L/4, L/2, L}, and the model of a compressed plan
(``--plan``, default ``plans/smollm2-cascade-2x.json``: the plan of ``cascadeprune compress smollm2-135m
--task lm@seq=64,eval=16,val=4 --ratio 2 --recipe recipes/lm-cpu.yaml --recovery-steps 0``, the cascade's
per-layer widths, written as ``deci``; speed and memory depend on the shapes only, so its weights are not
recovered). Each is written by the exporter's own writer and quantized by llama.cpp's quantizer
(``write_gguf``, ``quantize``; no parity check: the cut-down models are not meant to be run for text) and
benched like the main table (fresh process each, ``bench_gguf``), every quant and thread count. Per
(quant, threads), llama.cpp's decode time per generated token (its perf counters) is fitted as
``fixed + rate * block MB`` (non-negative least squares over the k-block models; block MB read from each
file, so a quantizer that keeps some layers at more bits is accounted for): the fixed part is what a token
costs with no blocks (embedding lookup, final norm, the 49,152 x 576 output head, graph and thread
overhead), ``rate * dense block MB / L`` the cost of one block. The host part (the greedy pick over the
vocabulary and the Python binding) is the wall time per token minus the decode time. The plan's time is
then predicted from its block MB and set beside its measured time. Memory: each bench record carries
llama.cpp's own buffer sizes (weights, KV cache, compute, output) from its load log.
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
from cascadeprune.deploy.gguf_bench import MEM_KEYS, TIME_KEYS

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "gguf.jsonl"
LM_RESULTS = HERE / "results" / "lm.jsonl"
RUNS = HERE / "runs" / "gguf"
MODEL = "smollm2-135m"
TASK = "lm@seq=64,eval=16,val=4"  # the lm.py table's task: the export's parity windows
QUANTS = ("f16", "q8_0", "q4_k_m")
THREADS = (1, 2)
# every ShortGPT variant removes whole layers only (shortgpt+auto-recipe, issue 33's fairness runs, joined the list
# on 2026-12-06: it had been left out of the uniform set though it is one, so it counted as a per-layer method)
UNIFORM_METHODS = ("shortgpt", "shortgpt+budget", "shortgpt+auto-recipe")
TARGETS = {"tg_vs_dense_same_quant_2x": 1.5, "model_mem_cut_same_quant_2x": 0.35,
           "tg_q4_vs_dense_f16_2x": 3.0, "model_mem_cut_q4_vs_dense_f16_2x": 0.75}
LIMITS = {"flops_per_token_2x": 1.65, "weights_cut_2x": 0.40}
BREAKDOWN_PLAN = HERE / "plans" / "smollm2-cascade-2x.json"
BREAKDOWN_RUNS = 5  # bench rounds per artifact, as the main table


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


def reusable(recs: list[dict], method: str, ratio: float) -> tuple[dict, Path] | None:
    """A clean ``benchmarks.lm`` record of ``method`` at ``ratio`` whose run directory still holds its model, with a
    report whose test perplexity equals the record's (seed 42 first, else the newest seed), and that model."""
    hits = [r for r in recs if r.get("model") == MODEL and r["method"] == method and r.get("ratio_target") == ratio
            and (r.get("recovery_steps") or 0) > 0 and record_status(r) == "ok" and r.get("command")]
    for r in sorted(reversed(hits), key=lambda r: r["seed"] != 42):  # stable: seed 42, then the newest first
        cmd = shlex.split(r["command"])
        out = Path(cmd[cmd.index("--out") + 1])
        report = out / "report.json"
        if (out / "model").is_dir() and report.is_file() and \
                abs(json.loads(report.read_text())["perplexity"] - r["perplexity_mean"]) < 1e-9:
            return r, out / "model"
    return None


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
            done = reusable(recs, p["method"], ratio)
            if done is not None:
                rec, model = done
                out.append({"name": name, "method": p["method"], "ratio": ratio, "pick": tag,
                            "val_perplexity_mean": p["val_perplexity_mean"], "seeds": p["seeds"],
                            "source": str(model), "compress": None, "reused": rec})
                continue
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
                         **{k: b.get(k) for k in MEM_KEYS + TIME_KEYS + ("kv_v_padded_to", "flash_attn")},
                         "task": TASK, "runs": b["runs"],
                         "compress_command": m["reused"]["command"] if m.get("reused") else
                         shlex.join(m["compress"] or []),
                         **({"reused_run": True, "seed": m["reused"]["seed"]} if m.get("reused") else {}),
                         **provenance("gguf", argv)})
    return append_records(results, recs)


def table(recs: list[dict]) -> str:
    """Each figure beside its target and the physical limit, same quant and threads (the main run's records:
    those without a ``kind``)."""
    recs = [r for r in recs if r.get("kind") is None]
    run = lambda r: (r.get("commit"), r.get("command"))  # noqa: E731 - one benchmark run
    dense = {(run(r), r["quant"], r["threads"]): r for r in recs if r["method"] == "dense"}
    rows = ["| model | ratio | quant | threads | arch | ppl | pp tok/s | gen tok/s | gen vs dense (same quant) | "
            "model MB | model MB cut vs dense | file MB | gen vs dense f16 | model MB cut vs dense f16 |",
            "|" + "---|" * 14]
    for r in sorted(recs, key=lambda r: (r["threads"], r["ratio"], r["method"], QUANTS.index(r["quant"]))):
        d, d16 = dense.get((run(r), r["quant"], r["threads"])), dense.get((run(r), "f16", r["threads"]))
        tg = r["tg_tok_s"] / d["tg_tok_s"] if d else None
        cut = 1 - r["model_mem_mb"] / d["model_mem_mb"] if d else None
        tg16 = r["tg_tok_s"] / d16["tg_tok_s"] if d16 else None
        cut16 = 1 - r["model_mem_mb"] / d16["model_mem_mb"] if d16 else None
        at2 = r["ratio"] == 2.0
        t = (f" (target >= {TARGETS['tg_vs_dense_same_quant_2x']}x, limit ~{LIMITS['flops_per_token_2x']}x)"
             if at2 else "")
        c = f" (target >= {TARGETS['model_mem_cut_same_quant_2x']:.0%}, limit ~{LIMITS['weights_cut_2x']:.0%})" if at2 else ""
        q4 = at2 and r["quant"] == "q4_k_m"
        reused = f" (seed {r['seed']}'s lm.py run)" if r.get("reused_run") else ""
        rows.append(
            f"| {r['method']}{reused} | "
            f"{r['ratio']:g} | {r['quant']} | {r['threads']} | {r.get('arch') or '–'} | "
            f"{r['ppl_mean']:.2f} | {r['pp_tok_s']:.0f} | {r['tg_tok_s']:.1f} | "
            f"{'–' if tg is None else f'{tg:.2f}x'}{t} | {r['model_mem_mb']:.0f} | "
            f"{'–' if cut is None else f'{cut:.0%}'}{c} | {r['file_mb']:.0f} | "
            f"{'–' if tg16 is None else f'{tg16:.2f}x'}{' (target >= 3x)' if q4 else ''} | "
            f"{'–' if cut16 is None else f'{cut16:.0%}'}{' (target >= 75%)' if q4 else ''} |")
    return "\n".join(rows)


# -- --breakdown: where the time and the memory go ---------------------------------------------------------

def layer_counts(n: int) -> list[int]:
    """The block counts of the fit: 1, a quarter, half and all of ``n`` (distinct)."""
    return sorted({1, max(1, n // 4), max(1, n // 2), n})


def fit(points: list[tuple[float, float]]) -> dict:
    """``y = fixed + rate * x`` by non-negative least squares (a time is never negative), with R^2 and the
    largest relative residual. ``points``: (x, y)."""
    import numpy as np
    from scipy.optimize import nnls

    x = np.array([p[0] for p in points], dtype=float)
    y = np.array([p[1] for p in points], dtype=float)
    (fixed, rate), _ = nnls(np.stack([np.ones_like(x), x], 1), y)
    pred = fixed + rate * x
    ss = float(((y - y.mean()) ** 2).sum())
    return {"fixed": float(fixed), "rate": float(rate), "points": len(points),
            "r2": 1 - float(((y - pred) ** 2).sum()) / ss if ss > 0 else None,
            "max_rel_residual": float(np.max(np.abs(y - pred) / y))}


def _breakdown_models(dense, plan_path: Path | None):
    """(name, model, how) for the k-block models and the plan's model, from the dense model by plan + surgery."""
    from cascadeprune.plan import PruningPlan
    from cascadeprune.surgery import apply_plan

    n = len(dense.model.layers)
    for k in layer_counts(n):
        plan = PruningPlan(layers=set(range(k, n)))
        yield f"blocks-{k}", (dense if k == n else apply_plan(dense, plan)), {"method": "dense" if k == n else
                                                                          "first-blocks", "n_layers": k}
    if plan_path is not None:
        yield "plan", apply_plan(dense, PruningPlan.load(plan_path)), {"method": "plan", "plan": str(plan_path)}


def build_breakdown(plan_path: Path | None, quants=None, out: Path | None = None) -> list[dict]:
    """Write the breakdown's GGUF files (f16 by the exporter's writer, the rest by llama.cpp's quantizer);
    one entry per (model, quant) with its path, block params and layer shapes."""
    from cascadeprune.accounting import Shape
    from cascadeprune.deploy.gguf_export import quantize, write_gguf
    from cascadeprune.storage import load_model
    from cascadeprune.tasks import get_task

    quants = quants or QUANTS
    out = out or RUNS / "breakdown"
    dense = load_model(MODEL).eval()
    tok = get_task(TASK, dense, source=MODEL).tokenizer  # the export's tokenizer: the bench's prompt is text
    arts = []
    for name, model, how in _breakdown_models(dense, plan_path):
        d = out / name
        d.mkdir(parents=True, exist_ok=True)
        f16 = d / "model.f16.gguf"
        print(f"breakdown: writing {f16}", file=sys.stderr, flush=True)
        info = write_gguf(model, tok, f16, "f16", name=name)
        bp = Shape.of(model).block_params()
        for q in quants:
            f = f16 if q == "f16" else d / f"model.{q}.gguf"
            if q != "f16":
                quantize(f16, f, q, threads=2)
            arts.append({"name": name, "quant": q, "path": str(f), "arch": info["arch"], "block_params": bp,
                         "n_layers": len(info["layers"]), "layers": info["layers"], **how})
        del model
    dense_bp = max(a["block_params"] for a in arts if a["method"] == "dense")
    for a in arts:
        a["ratio"] = dense_bp / a["block_params"]
    return arts


BENCH_KEYS = ("pp_tok_s", "tg_tok_s", "ttft_ms", "peak_rss_mb", "model_mem_mb", "file_mb", "runs", "file_layout",
              "weights_buffers", "kv_k_type", "kv_v_type", "kv_v_padded_to", "flash_attn") + MEM_KEYS + TIME_KEYS


def breakdown(argv: list[str], results: Path, plan_path: Path | None = BREAKDOWN_PLAN, quants=None, threads=None,
              runs: int = BREAKDOWN_RUNS) -> list[dict]:
    """Build, bench and fit (module docstring); append ``kind: breakdown_point`` records (one per artifact and
    thread count) and ``kind: breakdown_fit`` records (one per quant and thread count) to ``results``."""
    from cascadeprune.deploy.gguf_bench import bench_gguf

    arts = build_breakdown(plan_path, quants)
    prov = provenance("gguf", argv)
    points, fits = [], []
    for t in threads or THREADS:
        bench = bench_gguf([a["path"] for a in arts], threads=t, runs=runs)
        for a, b in zip(arts, bench):
            points.append({"benchmark": "gguf", "kind": "breakdown_point", "model": MODEL, "method": a["method"],
                           "n_layers": a["n_layers"], "ratio": a["ratio"], "quant": a["quant"], "threads": t,
                           "arch": a["arch"], "block_params": a["block_params"], "layers": a["layers"],
                           "plan": _rel(a.get("plan")),
                           **{k: b.get(k) for k in BENCH_KEYS}, **prov})
    for q in dict.fromkeys(p["quant"] for p in points):
        for t in dict.fromkeys(p["threads"] for p in points):
            grp = [p for p in points if p["quant"] == q and p["threads"] == t]
            sweep = [p for p in grp if p["method"] in ("dense", "first-blocks") and p["tg_decode_ms"] is not None]
            dense = next(p for p in grp if p["method"] == "dense")
            if len(sweep) < 2:
                continue
            f = fit([(p["file_layout"]["blocks_mb"], p["tg_decode_ms"]) for p in sweep])
            host = statistics.mean(p["tg_host_ms"] for p in sweep)
            lay = dense["file_layout"]
            rec = {"benchmark": "gguf", "kind": "breakdown_fit", "model": MODEL, "quant": q, "threads": t,
                   "fixed_ms": f["fixed"], "ms_per_block_mb": f["rate"], "r2": f["r2"],
                   "max_rel_residual": f["max_rel_residual"], "points": f["points"],
                   "layer_counts": [p["n_layers"] for p in sweep], "host_ms": host,
                   "per_layer_ms": f["rate"] * lay["blocks_mb"] / dense["n_layers"],
                   "head_type": lay["head_type"], "head_mb": lay["head_mb"],
                   "head_ms_at_block_rate": f["rate"] * lay["head_mb"],
                   "dense_token_ms": dense["tg_token_ms"], "dense_decode_ms": dense["tg_decode_ms"],
                   "dense_blocks_ms": f["rate"] * lay["blocks_mb"], "dense_n_layers": dense["n_layers"]}
            plan = next((p for p in grp if p["method"] == "plan"), None)
            if plan is not None:
                pred = f["fixed"] + f["rate"] * plan["file_layout"]["blocks_mb"] + host
                rec.update(plan=plan["plan"], plan_ratio=plan["ratio"], plan_arch=plan["arch"],
                           plan_predicted_token_ms=pred, plan_measured_token_ms=plan["tg_token_ms"],
                           plan_predicted_speedup=dense["tg_token_ms"] / pred,
                           plan_measured_speedup=dense["tg_token_ms"] / plan["tg_token_ms"])
            rec["ceiling_speedup"] = dense["tg_token_ms"] / (f["fixed"] + host) if f["fixed"] + host > 0 else None
            fits.append({**rec, **prov})
    return append_records(results, points + fits)


def _rel(path: str | None) -> str | None:
    if path is None:
        return None
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def _f(v, fmt: str = ".2f", suffix: str = "") -> str:
    return "–" if v is None else format(v, fmt) + suffix


def breakdown_table(recs: list[dict]) -> str:
    """The breakdown records (newest run) as three Markdown tables; '' when there are none."""
    fits = [r for r in recs if r.get("kind") == "breakdown_fit"]
    if not fits:
        return ""
    last = max(r["date"] for r in fits)  # one run: the newest
    fits = [r for r in fits if r["date"] == last]
    pts = [r for r in recs if r.get("kind") == "breakdown_point" and r["date"] == last]
    order = lambda r: (r["threads"], QUANTS.index(r["quant"]) if r["quant"] in QUANTS else 9)  # noqa: E731
    out = ["**Where a generated token's time goes** (llama.cpp's decode time per token fitted over models with "
           f"{', '.join(map(str, fits[0]['layer_counts']))} of the {fits[0]['dense_n_layers']} blocks kept; "
           "host = wall time per token minus llama.cpp's decode time: the greedy pick and the Python binding; "
           "fixed = the fit's decode time with no blocks; blocks = the fit's per-MB rate times the dense file's "
           "block MB):", "",
           "| quant | threads | dense ms/token | host ms | fixed decode ms (embedding, head, graph) | head MB (type) | "
           "per block ms | blocks ms (dense) | fit R² | max residual | speedup if blocks cost nothing |",
           "|" + "---|" * 11]
    for r in sorted(fits, key=order):
        out.append(f"| {r['quant']} | {r['threads']} | {r['dense_token_ms']:.2f} | {r['host_ms']:.2f} | "
                   f"{r['fixed_ms']:.2f} | {r['head_mb']:.1f} ({r['head_type']}) | "
                   f"{r['per_layer_ms']:.3f} | {r['dense_blocks_ms']:.2f} | {_f(r['r2'], '.3f')} | "
                   f"{100 * r['max_rel_residual']:.1f} % | {_f(r['ceiling_speedup'], '.2f', 'x')} |")
    planned = [r for r in fits if r.get("plan_predicted_token_ms") is not None]
    if planned:
        d16 = {r["threads"]: r for r in fits if r["quant"] == "f16"}
        out += ["", f"**The compressed plan, predicted from the fit and measured** (`{planned[0]['plan']}`, "
                f"{planned[0]['plan_ratio']:.2f}x on the blocks, `{planned[0]['plan_arch']}`; against dense of the "
                "same quant, and against dense f16; the ceiling is the speedup if the plan's blocks cost nothing):",
                "", "| quant | threads | predicted ms/token | measured ms/token | speedup predicted | "
                "speedup measured | "
                "vs dense f16 predicted | vs dense f16 measured | vs dense f16 ceiling |", "|" + "---|" * 9]
        for r in sorted(planned, key=order):
            b = d16.get(r["threads"])
            ceil16 = b["dense_token_ms"] / (r["fixed_ms"] + r["host_ms"]) if b else None
            out.append(f"| {r['quant']} | {r['threads']} | {r['plan_predicted_token_ms']:.2f} | "
                       f"{r['plan_measured_token_ms']:.2f} | {r['plan_predicted_speedup']:.2f}x | "
                       f"{r['plan_measured_speedup']:.2f}x | "
                       f"{_f(b and b['dense_token_ms'] / r['plan_predicted_token_ms'], '.2f', 'x')} | "
                       f"{_f(b and b['dense_token_ms'] / r['plan_measured_token_ms'], '.2f', 'x')} | "
                       f"{_f(ceil16, '.2f', 'x')} |")
    mem = [p for p in pts if p["method"] in ("dense", "plan") and p["threads"] == min(x["threads"] for x in pts)]
    if mem:
        out += ["", f"**What the model memory holds** (MiB; model memory = peak RSS minus llama.cpp with no model; "
                f"the buffers as llama.cpp logs them at load, context {mem[0].get('n_ctx')} tokens, flash attention "
                f"{mem[0].get('flash_attn') or '–'}; other = model memory minus the four buffers; "
                f"{mem[0]['threads']} thread(s)):", "",
                "| model | quant | arch | model MB | weights (per buffer type) | KV cache (K + V) | V padded to | "
                "compute | output | "
                "other | file MB | model MB cut vs dense | weights cut vs dense |", "|" + "---|" * 13]
        dense = {p["quant"]: p for p in mem if p["method"] == "dense"}
        for p in sorted(mem, key=lambda p: (QUANTS.index(p["quant"]) if p["quant"] in QUANTS else 9,
                                             p["method"] != "dense")):
            d = dense.get(p["quant"])
            cut = 1 - p["model_mem_mb"] / d["model_mem_mb"] if d else None
            wcut = 1 - p["weights_mb"] / d["weights_mb"] if d and p.get("weights_mb") and d.get("weights_mb") else None
            kv = (f"{_f(p.get('kv_cache_mb'))} ({_f(p.get('kv_k_mb'))} + {_f(p.get('kv_v_mb'))})")
            name = "dense" if p["method"] == "dense" else f"plan {p['ratio']:.2f}x"
            bufs = " + ".join(f"{k} {v:.1f}" for k, v in (p.get("weights_buffers") or {}).items())
            out.append(f"| {name} | {p['quant']} | {p['arch']} | {p['model_mem_mb']:.1f} | {_f(p.get('weights_mb'))} "
                       f"({bufs or '–'}) | "
                       f"{kv} | {_f(p.get('kv_v_padded_to'), 'd')} | {_f(p.get('compute_buffer_mb'))} | "
                       f"{_f(p.get('output_buffer_mb'))} | {_f(p.get('other_mem_mb'), '.1f')} | {p['file_mb']:.1f} | "
                       f"{_f(cut and 100 * cut, '.0f', ' %')} | {_f(wcut and 100 * wcut, '.0f', ' %')} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ratios", nargs="+", type=float, default=[1.5, 2.0])
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--list", action="store_true", help="print the picked models and every command; run nothing")
    ap.add_argument("--table", action="store_true", help="print the table of --results and stop")
    ap.add_argument("--breakdown", action="store_true", help="where the time and memory go (module docstring); "
                    "appends kind=breakdown_* records to --results")
    ap.add_argument("--plan", type=Path, default=BREAKDOWN_PLAN, help="--breakdown: the compressed plan to predict "
                    f"(default {BREAKDOWN_PLAN.relative_to(ROOT)})")
    ap.add_argument("--threads", type=int, nargs="+", default=list(THREADS), help="--breakdown: llama.cpp thread "
                    f"counts (default {' '.join(map(str, THREADS))})")
    args = ap.parse_args()
    if args.table:
        recs = load_records(args.results)
        print(table(recs))
        extra = breakdown_table(recs)
        if extra:
            print("\n" + extra)
        return
    if args.breakdown:
        recs = breakdown(sys.argv[1:], args.results, args.plan, threads=tuple(args.threads))
        print(breakdown_table(recs))
        return
    models = plan(load_records(LM_RESULTS), tuple(args.ratios))
    if args.list:
        for m in models:
            why = (f" ({m['pick']}: mean final val perplexity {m['val_perplexity_mean']:.1f} over {m['seeds']} seed(s))"
                   if m.get("pick") else "")
            print(f"{m['name']}: {m['method']} at {m['ratio']:g}x{why}")
            if m["compress"]:
                print("  " + shlex.join(m["compress"]))
            elif m.get("reused"):
                print(f"  reuses {m['source']} (seed {m['reused']['seed']}: {m['reused']['command']})")
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
