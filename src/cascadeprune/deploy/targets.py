"""Deployment targets, the measuring side: ``--latency-ms T`` and ``--memory-mb M`` of ``compress`` (classifiers).

A candidate is measured as it would be deployed: exported (``--runtime onnx``, fp32) or saved (``torch``), then
timed by the ``bench`` worker in a fresh process with pinned threads (:func:`cascadeprune.deploy.bench.bench_one`).
Latency is the p50 of single calls of ``--batch`` windows; memory is the process's peak RSS (what the box must
hold, runtime included). The search over ratios that calls this lives in :mod:`cascadeprune.targets` (it runs
``method auto``, which deploy may not import).

Example::

    spec = TargetSpec(latency_ms=2.0, runtime="onnx", threads=1, batch=1).check()
    rec = measure(Path("runs/x/model"), spec, protocol="cwru-4class-crossload")
    meets(rec, spec)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from cascadeprune.deploy.bench import bench_one
from cascadeprune.errors import CascadePruneError

FORMAT = "cascadeprune-targets/1"
RATIO_DIGITS = 4


@dataclass
class TargetSpec:
    latency_ms: float | None = None  # p50 of one call of `batch` windows
    memory_mb: float | None = None  # the process's peak RSS
    runtime: str = "onnx"
    threads: int = 1
    batch: int = 1
    runs: int = 100  # timed calls per candidate
    warmup: int = 10
    max_seconds: float = 20.0  # per candidate's timed calls

    def check(self) -> "TargetSpec":
        """One-line errors naming the flag: a budget must be a finite number > 0."""
        if self.latency_ms is None and self.memory_mb is None:
            raise CascadePruneError("give --latency-ms or --memory-mb (or both)")
        for flag, v in (("--latency-ms", self.latency_ms), ("--memory-mb", self.memory_mb)):
            if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise CascadePruneError(f"{flag}: must be a finite number > 0, got {v}")
        if self.runtime not in ("onnx", "torch"):
            raise CascadePruneError(f"--runtime {self.runtime!r}: choose onnx or torch")
        for flag, v in (("--threads", self.threads), ("--batch", self.batch)):
            if not isinstance(v, int) or v < 1:
                raise CascadePruneError(f"{flag}: must be an integer >= 1, got {v}")
        return self

    @property
    def flag(self) -> str:
        """The flag an error about the target names."""
        return "--latency-ms" if self.latency_ms is not None else "--memory-mb"

    def what(self) -> str:
        parts = []
        if self.latency_ms is not None:
            parts.append(f"p50 latency <= {self.latency_ms:g} ms")
        if self.memory_mb is not None:
            parts.append(f"peak RSS <= {self.memory_mb:g} MB")
        return " and ".join(parts) + f" ({self.runtime}, batch {self.batch}, {self.threads} thread(s))"


def meets(rec: dict, spec: TargetSpec) -> bool:
    return ((spec.latency_ms is None or rec["p50_ms"] <= spec.latency_ms) and
            (spec.memory_mb is None or rec["peak_rss_mb"] <= spec.memory_mb))


def measure(model_dir: Path, spec: TargetSpec, protocol: str | None = None, data_dir: str | None = None) -> dict:
    """Export ``model_dir`` (onnx runtime; written beside it as ``export/``) and bench it in a fresh process."""
    from cascadeprune.deploy.export import export_classifier

    artifact = model_dir
    if spec.runtime == "onnx":
        artifact = model_dir.parent / "export"
        export_classifier(model_dir, artifact, task=protocol, data_dir=data_dir, overwrite=True, progress=False)
    rec = bench_one(artifact, spec.runtime, batch=spec.batch, threads=spec.threads, runs=spec.runs,
                    warmup=spec.warmup, max_seconds=spec.max_seconds)
    keep = ("p50_ms", "p90_ms", "p99_ms", "peak_rss_mb", "base_rss_mb", "model_mem_mb", "file_mb", "block_params")
    return {k: rec.get(k) for k in keep} | {"artifact": str(artifact)}


def row(ratio, rec: dict, spec: TargetSpec, **extra) -> dict:
    return {"ratio": ratio, **extra, **{k: rec[k] for k in ("p50_ms", "p90_ms", "peak_rss_mb", "model_mem_mb",
                                                          "file_mb")}, "meets": meets(rec, spec)}


def miss_message(spec: TargetSpec, rec: dict, ratio: float, dense: dict | None) -> str:
    """One line: what the most compressed plan reached, against the budget that it missed."""
    bits = []
    if spec.latency_ms is not None and rec["p50_ms"] > spec.latency_ms:
        bits.append(f"--latency-ms {spec.latency_ms:g}: not reachable: the smallest p50 latency reached is "
                    f"{rec['p50_ms']:.4g} ms, at {ratio:.3g}x (the most compressed plan; {spec.runtime}, batch "
                    f"{spec.batch}, {spec.threads} thread(s))")
    if spec.memory_mb is not None and rec["peak_rss_mb"] > spec.memory_mb:
        bits.append(f"--memory-mb {spec.memory_mb:g}: not reachable: the smallest peak RSS reached is "
                    f"{rec['peak_rss_mb']:.4g} MB, at {ratio:.3g}x (of which the {spec.runtime} runtime alone takes "
                    f"{rec['base_rss_mb']:.4g} MB)")
    tail = f"; dense: {dense['p50_ms']:.4g} ms, {dense['peak_rss_mb']:.4g} MB" if dense else ""
    return "; ".join(bits) + tail + "; relax the budget or change --runtime / --threads / --batch"


def targets_markdown(t: dict) -> str:
    """The measured candidates as a Markdown section of report.md."""
    lines = [f"## Deployment target: {t['what']}", "",
             f"Chosen: {t['chosen_ratio']:g}x — {t['why']}. Reachable bound {t['max_ratio']:g}x.", "",
             "| ratio | candidate | val | p50 ms | p90 ms | peak RSS MB | model MB | file MB | meets |",
             "|---|---|---|---|---|---|---|---|---|"]
    f = lambda v: "–" if v is None else f"{v:.4g}"  # noqa: E731
    for r in t["candidates"]:
        mark = "yes" if r["meets"] else ("no: " + r["error"][:60] if r.get("error") else "no")
        lines.append(f"| {r['ratio']:g} | {r['kind']}{' (chosen)' if r.get('chosen') else ''} | {f(r.get('val'))} | "
                     f"{f(r['p50_ms'])} | {f(r['p90_ms'])} | {f(r['peak_rss_mb'])} | {f(r['model_mem_mb'])} | "
                     f"{f(r['file_mb'])} | {mark} |")
    return "\n".join(lines) + "\n"
