"""Deployment targets, the search: ``compress --method auto --latency-ms T`` / ``--memory-mb M`` (classifiers).

The answer is the best-validation model whose **exported artifact** meets the budget, every candidate measured by
:mod:`cascadeprune.deploy.targets` (export, then the ``bench`` worker in a fresh process). This module sits above
``methods`` and ``deploy`` (deploy may not import methods; the core may not import deploy).

1. **Reach first**: the most compressed plan any search can produce (``methods.auto.max_plan``) is cut without
   recovery, exported and measured. If even it misses the budget, the run stops with one line naming the smallest
   latency (or memory) reached and at which ratio, before any search or training.
2. The dense model is measured for the log.
3. **Galloping, then bisection** over auto's candidate ratios (``methods.auto.RATIO_WALK`` below the reachable
   bound, lowest first): each probed ratio is a full ``method auto`` run (search, cut, recovery, on validation
   only), exported and measured. Indices 0, 1, 3, 7, ... are probed until one meets the budget, then the gap
   between the last miss and that hit is bisected. Latency and memory fall as the ratio grows, so this finds the
   smallest ratio that meets the budget: one run for a loose budget, about 2 log2(n) for one met near the bound.
4. Among every measured candidate that meets the budget, the best validation metric wins (ties: the lower ratio).

Everything measured is listed in ``report.json`` → ``targets.candidates`` (ratio, validation metric, p50 / p90
latency, peak RSS, model memory, file size, meets or not), in ``targets.json`` and in ``report.md``.

Example::

    spec = TargetSpec(latency_ms=2.0, runtime="onnx", threads=1, batch=1)
    result = compress_to_target(model, task, cfg, "runs/fast", "clf", spec)
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

from cascadeprune.deploy import targets as measuring
from cascadeprune.deploy.targets import (FORMAT, RATIO_DIGITS, TargetSpec, meets, miss_message, row,
                                         targets_markdown)
from cascadeprune.errors import CascadePruneError

__all__ = ["TargetSpec", "check_reachable", "compress_to_target", "target_from_flags", "dry_run"]

TARGET_START_RATIO = 2.0  # a placeholder for the config check: a deployment target searches the ratio


def target_from_flags(task, ratio, max_loss, resume, latency_ms, memory_mb, runtime, threads, batch):
    """``compress``'s deployment target (--latency-ms / --memory-mb with --runtime, --threads, --batch) or None;
    every flag that does not fit is refused with its name."""
    from cascadeprune.tasks import task_kind

    flag = "--latency-ms" if latency_ms is not None else "--memory-mb" if memory_mb is not None else None
    if flag is None:
        for f, v in (("--runtime", runtime), ("--threads", threads), ("--batch", batch)):
            if v is not None:
                raise CascadePruneError(f"{f}: only a deployment target takes it (--latency-ms or --memory-mb)")
        return None
    if task_kind(task) == "lm":
        raise CascadePruneError(f"{flag}: classifier tasks only (a causal LM deploys as GGUF; bench it with llama.cpp)")
    for f, v in (("--ratio", ratio), ("--max-loss", max_loss)):
        if v is not None:
            raise CascadePruneError(f"{flag}: give {flag} or {f}, not both ({flag} searches the ratio)")
    if resume:
        raise CascadePruneError(f"--resume: a {flag} run has no stage checkpoints to resume; run it again")
    spec = TargetSpec(latency_ms=latency_ms, memory_mb=memory_mb, runtime=runtime or "onnx", threads=threads or 1,
                      batch=batch or 1).check()
    return spec


def dry_run(model, cfg, spec: TargetSpec) -> dict:
    """What ``compress --latency-ms/--memory-mb --dry-run`` reports: the ratios the bisection may try (those
    below the most the layout reaches) and the search's settings; nothing is cut or measured."""
    from cascadeprune.methods.auto import RATIO_WALK, TOLERANCE, max_ratio

    top = max_ratio(model, cfg.auto.layout, cfg.protect_ends, cfg.max_channel_fraction)
    return {"method": "auto", "target": spec.what(), "max_ratio": top,
            "candidate_ratios": [r for r in RATIO_WALK if r < top * (1 - TOLERANCE)],
            "search_budget": cfg.auto.search_budget, "layout": cfg.auto.layout}


def _say(msg: str, progress: bool) -> None:
    if progress:
        print(f"targets: {msg}", file=sys.stderr, flush=True)


def check_reachable(model, cfg, spec: TargetSpec, work: Path, protocol: str | None, data_dir: str | None,
                    progress: bool = True) -> tuple[float, dict]:
    """Cut the most compressed plan (no recovery), export and measure it; raise naming what it reached if even
    it misses the budget. Returns (its ratio, its measurement)."""
    from cascadeprune.accounting import block_params, dense_block_params
    from cascadeprune.methods.auto import max_plan
    from cascadeprune.storage import save_model
    from cascadeprune.surgery import apply_plan

    plan = max_plan(model, cfg.auto.layout, cfg.protect_ends, cfg.max_channel_fraction)
    small = apply_plan(copy.deepcopy(model), plan, inplace=True)
    top = dense_block_params(model) / block_params(small)
    save_model(small, work / "max" / "model", overwrite=True)
    del small
    _say(f"measuring the most compressed plan ({top:.3g}x, no recovery) to check the budget is reachable", progress)
    rec = measuring.measure(work / "max" / "model", spec, protocol, data_dir)
    if not meets(rec, spec):
        raise CascadePruneError(miss_message(spec, rec, top, None))
    return top, rec


def compress_to_target(model, task, cfg, out: str | Path, name: str, spec: TargetSpec, data_dir: str | None = None,
                       progress: bool = True) -> dict:
    """``method auto`` at the ratios a bisection picks, each candidate exported and measured; the best-validation
    one that meets ``spec`` is written to ``out`` (``model/``, ``plan.json``, ``report.*``, and ``export/`` for the
    onnx runtime). Returns run_compression's answer with ``report["targets"]``."""
    from cascadeprune.methods.auto import RATIO_WALK, TOLERANCE
    from cascadeprune.methods.cascade import run_compression
    from cascadeprune.report import write_report

    spec.check()
    if cfg.method != "auto":
        raise CascadePruneError(f"--latency-ms / --memory-mb: only --method auto takes them (method is {cfg.method!r})")
    out = Path(out)
    work = out / "targets"
    work.mkdir(parents=True, exist_ok=True)
    protocol = getattr(task, "name", None)
    t0 = time.perf_counter()
    dense_model = copy.deepcopy(model)
    try:
        top, max_rec = check_reachable(dense_model, cfg, spec, work, protocol, data_dir, progress)
    except CascadePruneError:
        shutil.rmtree(work, ignore_errors=True)  # nothing worth keeping: the error names what was reached
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise
    rows = [row(round(top, RATIO_DIGITS), max_rec, spec, kind="most compressed plan, no recovery", val=None)]
    from cascadeprune.storage import save_model

    save_model(dense_model, work / "dense" / "model", overwrite=True)
    dense = measuring.measure(work / "dense" / "model", spec, protocol, data_dir)
    rows.insert(0, row(1.0, dense, spec, kind="dense", val=None))
    _say(f"dense {dense['p50_ms']:.4g} ms, {dense['peak_rss_mb']:.4g} MB; most compressed {top:.3g}x "
         f"{max_rec['p50_ms']:.4g} ms, {max_rec['peak_rss_mb']:.4g} MB; budget {spec.what()}", progress)
    ratios = [r for r in RATIO_WALK if r < top * (1 - TOLERANCE)] + [round(top * (1 - TOLERANCE / 2), RATIO_DIGITS)]
    results: dict[float, dict] = {}

    def run_at(r: float) -> dict:
        """A full auto run at ratio ``r`` into work/r<r>/, exported and measured."""
        where = work / f"r{r:g}"
        _say(f"method auto at {r:g}x", progress)
        try:
            res = run_compression(copy.deepcopy(dense_model), task, cfg.model_copy(update={"ratio": r}), where,
                                  name=name, progress=progress)
        except CascadePruneError as e:  # no searched plan at this ratio (e.g. next to the bound): a miss, logged
            cand = {"ratio": r, "kind": "auto", "val": None, "error": str(e), "p50_ms": None, "p90_ms": None,
                   "peak_rss_mb": None, "model_mem_mb": None, "file_mb": None, "meets": False}
            rows.append(cand)
            _say(f"{r:g}x: no model ({e})", progress)
            return cand
        rec = measuring.measure(where / "model", spec, protocol, data_dir)
        rep = res["report"]
        val = rep["auto"]["final_val"]
        cand = row(r, rec, spec, kind="auto", val=val, ratio_achieved=round(rep["ratio_achieved"], RATIO_DIGITS))
        rows.append(cand)
        results[r] = {"row": cand, "report": rep, "dir": where}
        _say(f"{r:g}x: val {task.metric} {val:.4g}, p50 {rec['p50_ms']:.4g} ms, peak {rec['peak_rss_mb']:.4g} MB -> "
             f"{'meets' if cand['meets'] else 'misses'}", progress)
        return cand

    # galloping then bisection over the candidate ratios, lowest first: probe indices 0, 1, 3, 7, ... until one
    # meets the budget, then bisect between the last miss and that hit. A loose budget costs one auto run; one met
    # only near the bound about 2 log2(n). Invariant: ratios[lo] misses (lo = -1: none probed), ratios[hi] meets
    # (hi = len: only the unrecovered most compressed plan is known to).
    lo, hi, step = -1, len(ratios), 1
    while lo + step < len(ratios):
        i = lo + step
        if run_at(ratios[i])["meets"]:
            hi = i
            break
        lo, step = i, step * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if run_at(ratios[mid])["meets"]:
            hi = mid
        else:
            lo = mid
    if hi == len(ratios) and ratios[-1] not in results:  # the closest searched plan to the bound, measured too
        run_at(ratios[-1])
    ok = [v for v in results.values() if v["row"]["meets"]]
    if not ok:
        measured = [v["row"] for v in results.values()] or [{"ratio": top, "p50_ms": max_rec["p50_ms"],
                                                             "peak_rss_mb": max_rec["peak_rss_mb"]}]
        best = min(measured, key=lambda r: (r["p50_ms"], r["peak_rss_mb"]))
        (work / "candidates.json").write_text(json.dumps(rows, indent=2) + "\n")
        raise CascadePruneError(
            f"{'--latency-ms' if spec.latency_ms is not None else '--memory-mb'}: no searched model meets "
            f"{spec.what()}: the closest, at {best['ratio']:g}x, measured {best['p50_ms']:.4g} ms and "
            f"{best['peak_rss_mb']:.4g} MB; only the unrecovered most compressed plan ({top:.3g}x) met it "
            f"(every candidate: {work / 'candidates.json'})")
    sign = 1 if task.higher_is_better else -1
    win = max(ok, key=lambda v: (sign * v["row"]["val"], -v["row"]["ratio"]))
    win["row"]["chosen"] = True
    # the winner's deliverables to out/: model/, plan.json, the report; its export beside them
    for item in ("model", "plan.json"):
        dst = out / item
        if dst.is_dir():
            shutil.rmtree(dst)
        elif dst.exists():
            dst.unlink()
        shutil.move(str(win["dir"] / item), str(dst))
    if spec.runtime == "onnx":
        if (out / "export").exists():
            shutil.rmtree(out / "export")
        shutil.move(str(win["dir"] / "export"), str(out / "export"))
    report = win["report"]
    report["targets"] = {
        "format": FORMAT, **{k: v for k, v in asdict(spec).items()}, "what": spec.what(),
        "latency_stat": "p50_ms", "memory_stat": "peak_rss_mb", "max_ratio": round(top, RATIO_DIGITS),
        "chosen_ratio": win["row"]["ratio"],
        "why": f"best validation {task.metric} ({win['row']['val']:.4g}) among the {len(ok)} measured candidate(s) "
               f"that meet {spec.what()}",
        "candidates": sorted(rows, key=lambda r: r["ratio"]), "wall_s": round(time.perf_counter() - t0, 2)}
    paths = write_report(report, out)
    paths["markdown"].write_text(paths["markdown"].read_text() + "\n" + targets_markdown(report["targets"]))
    tmp = out / ".targets.json.partial"
    tmp.write_text(json.dumps(report["targets"], indent=2) + "\n")
    tmp.replace(out / "targets.json")  # atomic: a reader sees the whole list or none
    shutil.rmtree(work)  # the candidates' models and exports: their measurements are in the report
    return {"model": None, "report": report, "paths": paths}


