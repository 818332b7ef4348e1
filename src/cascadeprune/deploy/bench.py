"""Latency and memory of deployed artifacts, each in a fresh process, side by side.

Every artifact (an export directory or a classifier directory) is measured by
:mod:`cascadeprune.deploy.bench_worker` in its own Python process with pinned thread pools, so
one model's allocations never count against another's and the peak is the whole process's.
With several artifacts, ratios are taken against the first.

Example::

    recs = bench_artifacts(["deploy/dense", "deploy/13.8x"], batch=1, threads=1)
    table(recs)       # Markdown, ratios vs the first
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cascadeprune.deploy.runtime import RUNTIMES, artifact_kind
from cascadeprune.errors import CascadePruneError

KEYS = ("p50_ms", "p90_ms", "p99_ms", "throughput_per_s", "peak_rss_mb", "model_mem_mb", "file_mb", "block_params",
        "flops_per_window")


def bench_one(path: str | Path, runtime: str | None = None, batch: int = 1, threads: int = 1, runs: int = 200,
              warmup: int = 20, breakdown: bool = False, max_seconds: float | None = None,
              timeout: float = 1800) -> dict:
    """Measure one artifact in a fresh process and return its record (see bench_worker.measure)."""
    artifact_kind(path)  # a clear error here rather than from the child
    if runtime is not None and runtime not in RUNTIMES:
        raise CascadePruneError(f"--runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
    for name, v, low in (("batch", batch, 1), ("threads", threads, 1), ("runs", runs, 1), ("warmup", warmup, 0)):
        if v < low:
            raise CascadePruneError(f"--{name} must be >= {low}, got {v}")
    args = dict(path=str(path), runtime=runtime, batch=batch, threads=threads, runs=runs, warmup=warmup,
                breakdown=breakdown, max_seconds=max_seconds)
    return run_worker("cascadeprune.deploy.bench_worker", args, path, timeout)


def run_worker(module: str, args: dict, path, timeout: float, env: dict | None = None) -> dict:
    """Run a bench worker module in a fresh process with ``args`` (JSON) and return the record it prints last;
    a timeout, a non-zero exit or an ``error`` record becomes one line naming ``path``."""
    try:
        proc = subprocess.run([sys.executable, "-m", module, json.dumps(args)], capture_output=True, text=True,
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise CascadePruneError(f"{path}: benchmark did not finish within {timeout:.0f} s") from None
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    rec = json.loads(lines[-1]) if lines else {}
    if proc.returncode != 0 or "error" in rec or not rec:
        why = rec.get("error") or (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise CascadePruneError(f"{path}: benchmark failed: {why}")
    return rec


def bench_artifacts(paths, runtime: str | None = None, batch: int = 1, threads: int = 1, runs: int = 200,
                    warmup: int = 20, breakdown: bool = False, max_seconds: float | None = None,
                    progress: bool = True) -> list[dict]:
    """One record per artifact, measured one after the other, each in its own process."""
    for p in paths:
        artifact_kind(p)  # every path checked before anything runs
    out = []
    for i, p in enumerate(paths, 1):
        if progress:
            print(f"bench [{i}/{len(paths)}] {p} (batch {batch}, {threads} thread(s), {warmup} warm-up + {runs} "
                  f"runs)", file=sys.stderr, flush=True)
        out.append(bench_one(p, runtime, batch, threads, runs, warmup, breakdown, max_seconds))
    base = out[0]
    for rec in out:
        rec["vs_first"] = {k: (rec[k] / base[k] if base.get(k) and rec.get(k) is not None else None)
                           for k in ("p50_ms", "p99_ms", "peak_rss_mb", "model_mem_mb", "file_mb", "flops_per_window")}
    return out


def label(path: str | Path) -> str:
    """A short name for a table row: compress writes OUT/model, so name that by OUT."""
    p = Path(path)
    return f"{p.parent.name}/{p.name}" if p.name == "model" else p.name


def _num(v, fmt: str) -> str:
    return "–" if v is None else format(v, fmt)


def table(recs: list[dict]) -> str:
    """A Markdown table: one row per artifact, ratios against the first."""
    head = ("| artifact | runtime | int8 | batch | threads | p50 ms | p90 ms | p99 ms | windows/s | peak RSS MB | "
            "model MB | file MB | block params | FLOPs/window | p50 vs first | model MB vs first |")
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in recs:
        v = r.get("vs_first", {})
        rows.append(
            f"| {label(r['path'])} | {r['runtime']} | {'yes' if r.get('int8') else 'no'} | {r['batch']} | "
            f"{r['threads']} | {r['p50_ms']:.3f} | {r['p90_ms']:.3f} | {r['p99_ms']:.3f} | "
            f"{r['throughput_per_s']:.0f} | {r['peak_rss_mb']:.0f} | {r['model_mem_mb']:.1f} | {r['file_mb']:.2f} | "
            f"{_num(r.get('block_params'), ',')} | {_num(r.get('flops_per_window'), ',')} | "
            f"{_num(v.get('p50_ms'), '.3f')}x | {_num(v.get('model_mem_mb'), '.3f')}x |")
    return "\n".join(rows)


def breakdown_table(recs: list[dict], name=lambda r: label(r["path"]), head: str = "artifact") -> str:
    """Per-part kernel time (ms per call, share) for the records that carry a breakdown; ``name``
    gives a row's leading cells and ``head`` their header (e.g. ``"model | ratio | runtime"``)."""
    from cascadeprune.deploy.profile import PARTS

    cols = head.count("|") + 1
    rows = [f"| {head} | " + " | ".join(PARTS) + " | kernel ms |", "|" + "---|" * (len(PARTS) + cols + 1)]
    for r in recs:
        b = r.get("breakdown")
        if b:
            rows.append(f"| {name(r)} | " + " | ".join(
                f"{b['ms'][p]:.3f} ({100 * b['share'][p]:.0f} %)" for p in PARTS) + f" | {b['kernel_ms']:.3f} |")
    return "\n".join(rows)
