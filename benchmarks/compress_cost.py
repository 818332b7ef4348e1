"""Wall time and peak memory of a full `cascadeprune compress` run, through the CLI as a user runs it.

Each run is a fresh process (`python -m cascadeprune compress ...`); its wall time and peak
resident memory is the run's own ``process_peak_rss_mb`` (report.json): the engine resets the
high-water mark per stage, and on Linux that also resets the child's ru_maxrss, so the reaped
child's figure (kept as ``peak_rss_mb_rusage``) shows the last stage only. Accuracy,
achieved ratio and the per-stage record come from the run's report.json. One JSON record per run
is appended to benchmarks/results/compress_cost.jsonl (same keys as dense.jsonl).

    python -m benchmarks.compress_cost --models all-minilm-l6-v2 smollm2-135m --ratio 8.7

Starts from benchmarks/checkpoints/<model>_<protocol>_seed<seed> (benchmarks/dense.py writes them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._common import CHECKPOINTS, DATA, HERE, RESULTS_DIR, ROOT, append_child_records, run_child

RESULTS = RESULTS_DIR / "compress_cost.jsonl"


def _speed_jitter(recovery: dict) -> float:
    """The bearing task's recovery option (recovery.task; before it moved there: recovery.speed_jitter)."""
    from cascadeprune.tasks.bearing.options import RecoveryOptions

    if "speed_jitter" in recovery:
        return recovery["speed_jitter"]
    return RecoveryOptions.model_validate(recovery.get("task", {})).speed_jitter


def run_one(model: str, protocol: str, seed: int, ratio: float, recipe: Path) -> dict:
    ckpt = CHECKPOINTS / f"{model}_{protocol}_seed{seed}"
    if not ckpt.is_dir():
        raise SystemExit(f"{ckpt} is missing: python -m benchmarks.dense --models {model} --protocols {protocol} "
                         f"--seeds {seed}")
    out = HERE / "runs" / f"cost_{model}_{protocol}_{ratio:g}x_seed{seed}"
    cmd = [sys.executable, "-m", "cascadeprune", "compress", str(ckpt), "--task", protocol, "--ratio", str(ratio),
           "--recipe", str(recipe), "--seed", str(seed), "--data-dir", str(DATA), "--out", str(out), "--overwrite"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=os.environ | {"HF_HUB_OFFLINE": "1"})
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"compress failed ({proc.returncode}):\n{stderr[-3000:]}")
    rep = json.loads((out / "report.json").read_text())
    return {"benchmark": "compress_cost", "model": model, "protocol": protocol, "method": rep["method"],
            "ratio_target": ratio, "ratio_achieved": round(rep["ratio_achieved"], 4), "seed": seed,
            "test_snr_db": None, "accuracy": round(rep["accuracy"], 5), "macro_f1": round(rep["macro_f1"], 5),
            "per_load_accuracy": rep["test"].get("per_load_accuracy"), "block_params": rep["block_params"],
            "dense_accuracy": rep["dense"]["accuracy"], "stages": rep["stages"],
            "shares": {st["granularity"]: round(st["share"], 4) for st in rep["config"]["stages"]},
            "speed_jitter": _speed_jitter(rep["config"]["stages"][0]["recovery"]),
            "recovery_steps": {st["granularity"]: st["recovery"]["steps"] for st in rep["config"]["stages"]},
            "recipe": str(recipe.relative_to(ROOT)), "cli": " ".join(["cascadeprune", *cmd[3:]]),
            "wall_s": round(wall, 1), "peak_rss_mb": rep["process_peak_rss_mb"],
            "peak_rss_mb_rusage": _peak_child_mb()}


def _peak_child_mb() -> int:
    """Peak RSS of the finished compress process: RUSAGE_CHILDREN is the maximum over reaped
    children, and each --one process reaps exactly one (see main)."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["all-minilm-l6-v2", "smollm2-135m"])
    ap.add_argument("--protocol", default="cwru-4class-crossload")
    ap.add_argument("--ratio", type=float, default=8.7)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "cpu-fast.yaml")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.argv = sys.argv[1:]
    if args.one:  # one model per process, so RUSAGE_CHILDREN holds this run's child only
        print(json.dumps(run_one(args.models[0], args.protocol, args.seed, args.ratio, args.recipe.resolve())))
        return
    for model in args.models:
        child = run_child("compress_cost", "--one", "--models", model, "--protocol", args.protocol, "--ratio",
                          str(args.ratio), "--seed", str(args.seed), "--recipe", str(args.recipe))
        for rec in append_child_records(child, "compress_cost", args.argv, RESULTS, model):
            print(f"{model}: {rec['wall_s']} s, peak {rec['peak_rss_mb']} MB, {rec['ratio_achieved']:.2f}x, "
                  f"accuracy {100 * rec['accuracy']:.2f} % (dense {100 * rec['dense_accuracy']:.2f} %)", flush=True)


if __name__ == "__main__":
    main()
