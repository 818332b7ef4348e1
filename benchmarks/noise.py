"""Noise robustness of compressed classifiers: the dense model and every stage of a cascade.py run, on test
windows with white noise added at several SNRs.

Reads what ``benchmarks/cascade.py`` left on disk (the dense checkpoint in benchmarks/checkpoints/ and
each run's per-stage checkpoints, saved after that stage's recovery, in benchmarks/runs/), so run that
first with the same settings; it trains nothing. Noise is seeded by the run's seed, as in dense.py and
``cascade.py --test-snr-db``, so the dense model and every method of a seed see the same noisy
windows and differences are paired. Before scoring anything noisy it checks that the last stage's
clean accuracy equals the one cascade.py recorded (the run on disk is the run in the record).
Appends one JSON record per (seed, method, ratio, stage, SNR) to benchmarks/results/noise.jsonl;
``--table`` prints the paired cascade - one-shot difference per SNR from those records.

    python -m benchmarks.noise --model gpt2-deep --front-end raw --speed-jitter 0.03 --ratios 8.7 13.8 \
        --seeds 42 123 456 --snr-db 10 5 0 -5
    python -m benchmarks.noise --model gpt2-deep --front-end raw --speed-jitter 0.03 --table
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from benchmarks._common import (CHECKPOINTS, DATA, RESULTS_DIR, append_records, checkpoint_name, load_records,
                                mean_sd, newest, paired_cell, provenance, set_threads, t_stat, windows)
from benchmarks.cascade import RESULTS as CASCADE_RESULTS
from benchmarks.cascade import recovery_steps, run_dir

RESULTS = RESULTS_DIR / "noise.jsonl"


def recorded_accuracy(model: str, protocol: str, method: str, ratio: float, seed: int, ckpt: str) -> float:
    """The newest clean test accuracy cascade.py recorded for this run (same dense checkpoint, and the default
    recovery budget: the one whose run directory ``run_dir`` names without a scale)."""
    found, budget = None, recovery_steps()
    for r in load_records(CASCADE_RESULTS):
        if (r["model"], r["protocol"], r["method"], r["ratio_target"], r["seed"], r.get("test_snr_db"),
                r.get("dense_checkpoint"), r.get("recovery_steps")) == (model, protocol, method, ratio, seed, None,
                                                                      ckpt, budget):
            found = r["accuracy"]
    if found is None:
        raise SystemExit(f"no clean {method} {ratio:g}x seed {seed} record from {ckpt} in {CASCADE_RESULTS}")
    return found


def score_seed(args, seed: int) -> list[dict]:
    """Dense model and every stage checkpoint of each (method, ratio) run of one seed, at every SNR."""
    from cascadeprune.storage import load_model
    from cascadeprune.tasks.bearing.protocols import build_dataset
    from cascadeprune.tasks.bearing.train import evaluate

    win = windows()
    name = checkpoint_name(args.model, args.protocol, seed, args.speed_jitter, args.front_end)
    models = {("dense", 1.0, "dense"): load_model(CHECKPOINTS / name)}  # (method, ratio, stage) -> model
    final = {("dense", 1.0, "dense")}  # the models a run ends with
    clean = build_dataset(args.protocol, DATA, win, splits=("test",))
    for method in args.methods:
        for ratio in args.ratios:
            ckdir = run_dir(name, method, ratio) / "checkpoints"
            state = json.loads((ckdir / "state.json").read_text())
            if not state["stages"]:  # an unfinished run with stages fails the accuracy check below
                raise SystemExit(f"{ckdir}: no stage finished; rerun benchmarks/cascade.py for it")
            keys = [(method, ratio, f"{st['stage']}:{st['granularity']}") for st in state["stages"]]
            for key, st in zip(keys, state["stages"]):
                models[key] = load_model(ckdir / f"stage-{st['stage']:02d}")
            final.add(keys[-1])
            got = evaluate(models[keys[-1]], clean, "test")["accuracy"]
            want = recorded_accuracy(args.model, args.protocol, method, ratio, seed, name)
            if abs(got - want) > 1e-4:
                raise SystemExit(f"{ckdir}: last stage scores {got:.5f} clean, the record says {want:.5f}; "
                                 "the run on disk is not the recorded one")
    out = []
    for snr in [None, *args.snr_db]:
        data = clean if snr is None else build_dataset(args.protocol, DATA, win, snr_db=snr, noise_seed=seed,
                                                       splits=("test",))
        for (method, ratio, stage), m in models.items():
            r = evaluate(m, data, "test")
            out.append({"benchmark": "noise", "model": args.model, "protocol": args.protocol, "method": method,
                        "ratio_target": ratio, "stage": stage, "final": (method, ratio, stage) in final,
                        "seed": seed, "test_snr_db": snr,
                        "accuracy": round(r["accuracy"], 5), "macro_f1": round(r["macro_f1"], 5),
                        "dense_checkpoint": name, "front_end": args.front_end, "speed_jitter": args.speed_jitter})
    return out


def table(path: Path, model: str, front_end: str) -> str:
    """Per (ratio, SNR): dense, cascade and one-shot final accuracy and their paired difference."""
    final = {k: 100 * r["accuracy"] for k, r in newest(
        [r for r in load_records(path) if r["model"] == model and r["front_end"] == front_end and r["final"]],
        lambda r: (r["method"], r["ratio_target"], r["seed"], r["test_snr_db"])).items()}
    lines = [("| ratio | test noise | seeds | dense | cascade | one-shot "
              "| cascade − one-shot, paired (pp; ahead on) | t |"),
             "|---|---|---|---|---|---|---|---|"]
    ratios = sorted({k[1] for k in final if k[0] != "dense"})
    snrs = sorted({k[3] for k in final}, key=lambda s: -float("inf") if s is None else -s)
    for ratio in ratios:
        for snr in snrs:
            cells = defaultdict(dict)
            for (m, q, s, n), acc in final.items():
                if n == snr and (q == ratio or m == "dense"):
                    cells[m][s] = acc
            seeds = sorted(set(cells["cascade"]) & set(cells["oneshot"]) & set(cells["dense"]))
            if not seeds:
                continue
            col = {m: mean_sd([cells[m][s] for s in seeds]) for m in ("dense", "cascade", "oneshot")}
            diff = [cells["cascade"][s] - cells["oneshot"][s] for s in seeds]
            lines.append(f"| {ratio:g}× | {'clean' if snr is None else f'{snr:g} dB'} | {len(seeds)} | "
                         f"{col['dense']} | {col['cascade']} | {col['oneshot']} | {paired_cell(diff)} | "
                         f"{t_stat(diff)} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="gpt2-deep")
    ap.add_argument("--protocol", default="cwru-4class-crossload")
    ap.add_argument("--front-end", default="raw")
    ap.add_argument("--speed-jitter", type=float, default=0.03)
    ap.add_argument("--ratios", nargs="+", type=float, default=[8.7, 13.8])
    ap.add_argument("--methods", nargs="+", default=["cascade", "oneshot"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[42, 123, 456])
    ap.add_argument("--snr-db", nargs="+", type=float, default=[10.0, 5.0, 0.0, -5.0])
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--table", action="store_true", help="print the summary of --results and run nothing")
    args = ap.parse_args()
    args.argv = sys.argv[1:]
    if args.table:
        print(table(args.results, args.model, args.front_end))
        return
    set_threads()
    for seed in args.seeds:
        recs = append_records(args.results, [r | provenance("noise", args.argv) for r in score_seed(args, seed)])
        for r in recs:
            if r["final"]:
                print(f"seed {seed} {r['method']} {r['ratio_target']:g}x {r['stage']} "
                      f"{'clean' if r['test_snr_db'] is None else r['test_snr_db']}: {r['accuracy']:.4f}", flush=True)


if __name__ == "__main__":
    main()
