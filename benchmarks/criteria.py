"""Which importance criterion keeps the most accuracy? Every criterion of every granularity, one cut each.

For each dense classifier (benchmarks/dense.py checkpoints) and granularity, every registered
criterion scores the dense model on the same calibration windows (the engine's own
``stage_scores``), the engine's ``select`` removes ``--fraction`` of that granularity's
parameters (layers: of all block parameters; heads: of the attention heads' parameters;
channels: of the FFN channels'), and the pruned model is evaluated right after the cut and again
after ``--recovery-steps`` LoRA steps (the cascade's recovery, same seed for every criterion), on
the test split (for cross-load protocols the unseen load) and on the validation split (held-out
windows of the training loads, the calibration's own domain; ``val_*`` fields). Appends one record
per (seed, granularity, criterion) to benchmarks/results/criteria.jsonl; ``method`` is
``<granularity>-<criterion>[-naive]``.

    python -m benchmarks.criteria --model gpt2-deep --front-end raw --speed-jitter 0.03
    python -m benchmarks.criteria --model gpt2-deep --front-end raw --speed-jitter 0.03 --granularities heads \\
        --fraction 0.75
    python -m benchmarks.criteria --model llama-10m --granularities heads --mode naive   # GQA, per-head scoring
    python -m benchmarks.criteria --model gpt2-deep --front-end raw --speed-jitter 0.03 --fraction 0.75 \
        --granularities channels --allocation uniform   # the same share of every layer's channels
    python -m benchmarks.criteria --table --model gpt2-deep --front-end raw --fraction 0.5   # the Markdown table
    python -m benchmarks.criteria --model gpt2-deep --front-end raw --speed-jitter 0.03 --fraction 0.75 \
        --granularities channels --plans-only   # where each criterion's units come from (no cut, no evaluation)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks._common import (CHECKPOINTS, DATA, FRONT_ENDS, RESULTS_DIR, append_child_records, checkpoint_name,
                                load_records, newest, run_child, set_threads, windows)
from benchmarks.cascade import variant_config

RESULTS = RESULTS_DIR / "criteria.jsonl"
PLANS = RESULTS_DIR / "criteria_plans.jsonl"
GRANULARITIES = ("layers", "heads", "channels")


def granularity_params(model, granularity: str) -> int:
    """Block parameters the units of ``granularity`` carry in the model as it is."""
    from cascadeprune.accounting import block_params, unit_costs
    from cascadeprune.arch.resolve import resolve

    if granularity == "layers":
        return block_params(model)
    s = resolve(model)
    c = unit_costs(s)
    if granularity == "heads":
        return sum(len(l.heads) * c.q_head + len(l.kv_heads) * c.kv_head for l in s.layers)
    return sum(len(l.channels) * c.channel for l in s.layers)


def removed_per_layer(plan, granularity: str, n_layers: int) -> list[int]:
    """Units the plan removes from each layer, in layer order (layers: 1 for a removed layer)."""
    if granularity == "layers":
        return [int(i in plan.layers) for i in range(n_layers)]
    per = plan.heads if granularity == "heads" else plan.channels
    return [len(per.get(i, ())) for i in range(n_layers)]


def units_per_layer(model, granularity: str) -> list[int]:
    from cascadeprune.arch.resolve import resolve

    layers = resolve(model).layers
    return [1 if granularity == "layers" else len(l.heads if granularity == "heads" else l.channels) for l in layers]


def run_one(model: str, protocol: str, seed: int, granularity: str, fraction: float, recovery_steps: int,
            speed_jitter: float, front_end: str, mode: str, plans_only: bool = False,
            criteria: list[str] | None = None, allocation: str = "global") -> list[dict]:
    """One record per criterion; ``plans_only``: score and select only (no cut, no evaluation), recording
    where each criterion's units come from."""
    import copy

    import torch

    from cascadeprune.accounting import block_params
    from cascadeprune.arch.resolve import resolve
    from cascadeprune.importance import SPECS, names
    from cascadeprune.methods.cascade import cut_stage
    from cascadeprune.methods.config import StageConfig
    from cascadeprune.plan import applied_plan
    from cascadeprune.recovery.recover import recover
    from cascadeprune.storage import load_model
    from cascadeprune.tasks.bearing.protocols import build_dataset
    from cascadeprune.tasks.bearing.task import BearingTask
    from cascadeprune.tasks.bearing.train import evaluate

    set_threads()
    name = checkpoint_name(model, protocol, seed, speed_jitter, front_end)
    if not (CHECKPOINTS / name).is_dir():
        raise SystemExit(f"{CHECKPOINTS / name}: no dense checkpoint; train it with benchmarks/dense.py first")
    dense_clf = load_model(CHECKPOINTS / name)
    win = windows()
    ds = build_dataset(protocol, DATA, win)
    cfg = variant_config("cascade", 8.7, seed, speed_jitter=speed_jitter)  # the cascade's calibration & recovery
    task = BearingTask(protocol, dense_clf.classes, DATA, win, dataset=ds)
    batches = task.calibration_batches(None, cfg.calibration.n, cfg.calibration.batch_size, seed)
    # naive mode only for the criteria that implement it (the others would score exactly as grouped)
    criteria = criteria or [n for n in names(granularity) if mode != "naive" or SPECS[(granularity, n)].naive]
    dense = block_params(dense_clf)
    need = round(fraction * granularity_params(dense_clf, granularity))
    n_layers = len(resolve(dense_clf).layers)

    def cut(clf, criterion: str):
        """The engine's own one-step cut (score on ``clf`` as it is, select ``need`` parameters' worth, apply);
        the plan it applied, in the dense model's indices."""
        stage = StageConfig(granularity, criterion=criterion, mode=mode, allocation=allocation).check("stage")
        cut_stage(clf, batches, stage, block_params(clf) - need, cfg, seed * 1000, last=False, loss_fn=task.loss)
        return applied_plan(resolve(clf))

    records = []
    if plans_only:
        for criterion in criteria:
            plan = cut(copy.deepcopy(dense_clf), criterion)
            records.append({"benchmark": "criteria-plans", "model": model, "protocol": protocol, "seed": seed,
                            "granularity": granularity, "criterion": criterion, "mode": mode,
                            "allocation": allocation, "fraction": fraction,
                            "removed_per_layer": removed_per_layer(plan, granularity, n_layers),
                            "units_per_layer": units_per_layer(dense_clf, granularity),
                            "speed_jitter": speed_jitter, "dense_checkpoint": name, "front_end": front_end})
        return records
    dense_acc = evaluate(dense_clf, ds, "test")["accuracy"]
    dense_val = evaluate(dense_clf, ds, "val")["accuracy"]  # the training loads' held-out windows
    for criterion in criteria:
        clf = copy.deepcopy(dense_clf)
        t0 = time.perf_counter()
        plan = cut(clf, criterion)
        t_cut = time.perf_counter() - t0
        pruned = evaluate(clf, ds, "test")["accuracy"]
        pruned_val = evaluate(clf, ds, "val")["accuracy"]
        rec_cfg = copy.deepcopy(cfg.stages[GRANULARITIES.index(granularity)].recovery)
        rec_cfg.steps = recovery_steps
        torch.manual_seed(seed * 1000)
        rec = recover(clf, task, rec_cfg, seed=seed * 1000 + 1, progress=False)
        m = evaluate(clf, ds, "test")
        records.append({
            "removed_per_layer": removed_per_layer(plan, granularity, n_layers),
            "benchmark": "criteria", "model": model, "protocol": protocol,
            "method": f"{granularity}-{criterion}" + ("-naive" if mode == "naive" else "")
            + ("" if allocation == "global" else f"-{allocation}"),
            "granularity": granularity, "criterion": criterion, "mode": mode, "allocation": allocation,
            "fraction": fraction,
            "ratio_achieved": round(dense / block_params(clf), 4), "seed": seed, "test_snr_db": None,
            "dense_accuracy": round(dense_acc, 5), "accuracy_pruned": round(pruned, 5),
            "accuracy": round(m["accuracy"], 5), "macro_f1": round(m["macro_f1"], 5),
            "per_load_accuracy": m["per_load_accuracy"],
            "dense_val_accuracy": round(dense_val, 5), "val_accuracy_pruned": round(pruned_val, 5),
            "val_accuracy": round(evaluate(clf, ds, "val")["accuracy"], 5), "block_params": block_params(clf),
            "params_removed": dense - block_params(clf), "params_asked": need, "recovery_steps": rec["steps"],
            "speed_jitter": speed_jitter, "dense_checkpoint": name, "front_end": front_end,
            "score_and_cut_s": round(t_cut, 2), "wall_s": round(time.perf_counter() - t0, 1)})
    return records


def table(path: Path, model: str, front_end: str, fraction: float) -> str:
    """Markdown: one row per (granularity, criterion, mode) with the ratio, the accuracy right after the cut
    and after recovery (mean ± sd over seeds; the latest record of each seed), and the paired difference to
    ``random`` right after the cut; where records have them, the same right after the cut on the validation
    split (the training loads)."""
    import numpy as np

    def key(r: dict) -> tuple:
        mode = r["mode"] + ("" if r.get("allocation", "global") == "global" else f" {r['allocation']}")
        return r["granularity"], r["criterion"], mode, r["seed"]

    latest = newest([r for r in load_records(path)
                     if r["model"] == model and r["front_end"] == front_end and r["fraction"] == fraction], key)
    if not latest:
        raise SystemExit(f"{path}: no records for {model}, front end {front_end}, fraction {fraction}")
    cell = lambda xs: f"{100 * np.mean(xs):.2f} ± {100 * np.std(xs, ddof=1) if len(xs) > 1 else 0:.2f}"  # noqa: E731

    def val_cell(rs: dict) -> str:
        xs = [r["val_accuracy_pruned"] for r in rs.values() if "val_accuracy_pruned" in r]
        return cell(xs) if len(xs) == len(rs) else "–"

    def vs_random(rs: dict, base: dict, key: str, crit: str) -> str:
        """Paired mean difference to ``random`` in pp and the seeds it is ahead on; '' for random itself."""
        both = sorted(s for s in set(rs) & set(base) if key in rs[s] and key in base[s])
        diff = [100 * (rs[s][key] - base[s][key]) for s in both]
        if crit == "random" or not diff:
            return ""
        return f"{np.mean(diff):+.2f} ({sum(d > 0 for d in diff)} of {len(diff)})"

    with_val = any("val_accuracy_pruned" in r for r in latest.values())
    out = ["| granularity | criterion | ratio | after the cut | after recovery "
           "| − random after the cut (pp; ahead on) |"
           + (" after the cut, training loads (val) | − random there (pp; ahead on) |" if with_val else ""),
           "|---|---|---|---|---|---|" + ("---|---|" if with_val else "")]
    for g in GRANULARITIES:
        for crit, mode in sorted({(k[1], k[2]) for k in latest if k[0] == g}):
            rs = {k[3]: r for k, r in latest.items() if k[:3] == (g, crit, mode)}
            base = {k[3]: r for k, r in latest.items() if k[:3] == (g, "random", "grouped")}
            vs = vs_random(rs, base, "accuracy_pruned", crit)
            label = "" if mode == "grouped" else f" ({mode.replace('grouped ', '')})"
            out.append(f"| {g} | {crit}{label} | "
                       f"{np.mean([r['ratio_achieved'] for r in rs.values()]):.2f}× | "
                       f"{cell([r['accuracy_pruned'] for r in rs.values()])} | "
                       f"{cell([r['accuracy'] for r in rs.values()])} | {vs} |"
                       + (f" {val_cell(rs)} | {vs_random(rs, base, 'val_accuracy_pruned', crit)} |"
                          if with_val else ""))
    seeds = sorted({k[3] for k in latest})
    dense = dict((k[3], r["dense_accuracy"]) for k, r in latest.items())
    steps = sorted({r["recovery_steps"] for r in latest.values()})
    dense_val = dict((k[3], r["dense_val_accuracy"]) for k, r in latest.items() if "dense_val_accuracy" in r)
    out.append(f"\nseeds {', '.join(map(str, seeds))}; dense {cell(list(dense.values()))}"
               + (f" (val {cell(list(dense_val.values()))})" if len(dense_val) == len(dense) else "")
               + f"; recovery {', '.join(map(str, steps))} LoRA steps")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="gpt2-deep")
    ap.add_argument("--protocol", default="cwru-4class-crossload")
    ap.add_argument("--seeds", nargs="+", type=int, default=[42, 123, 456])
    ap.add_argument("--granularities", nargs="+", choices=GRANULARITIES, default=list(GRANULARITIES))
    ap.add_argument("--fraction", type=float, default=0.5,
                    help="share of the granularity's parameters to remove (default 0.5)")
    ap.add_argument("--recovery-steps", type=int, default=60, help="LoRA steps after the cut (default 60)")
    ap.add_argument("--speed-jitter", type=float, default=0.0)
    ap.add_argument("--front-end", choices=sorted(FRONT_ENDS), default="spectrum")
    ap.add_argument("--mode", choices=("grouped", "naive"), default="grouped")
    ap.add_argument("--allocation", choices=("global", "uniform"), default="global",
                    help="channels: rank across layers (global) or take the same share of every layer (uniform)")
    ap.add_argument("--criteria", nargs="+", default=None, help="only these criteria (default: every registered one)")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--table", action="store_true", help="print the Markdown table of --results and stop")
    ap.add_argument("--plans-only", action="store_true",
                    help=f"score and select only, append where each criterion's units come from to {PLANS.name}")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.argv = sys.argv[1:]
    if args.table:
        print(table(args.results, args.model, args.front_end, args.fraction))
        return
    if not 0 < args.fraction < 1:
        raise SystemExit(f"--fraction {args.fraction}: must be between 0 and 1")
    if args.allocation != "global" and args.granularities != ["channels"]:
        raise SystemExit("--allocation only changes how channels are selected; use it with --granularities channels")
    if args.mode == "naive" and args.granularities != ["heads"]:
        raise SystemExit("--mode naive only changes how heads are scored; use it with --granularities heads")
    if args.one:
        print(json.dumps(run_one(args.model, args.protocol, args.seeds[0], args.granularities[0], args.fraction,
                                 args.recovery_steps, args.speed_jitter, args.front_end, args.mode,
                                 args.plans_only, args.criteria, args.allocation)))
        return
    for granularity in args.granularities:
        for seed in args.seeds:
            child = run_child("criteria", "--one", "--model", args.model, "--protocol", args.protocol, "--seeds",
                              str(seed), "--granularities", granularity, "--fraction", str(args.fraction),
                              "--recovery-steps", str(args.recovery_steps), "--speed-jitter", str(args.speed_jitter),
                              "--front-end", args.front_end, "--mode", args.mode,
                              *(["--plans-only"] if args.plans_only else []),
                              *(["--criteria", *args.criteria] if args.criteria else []),
                              "--allocation", args.allocation)
            if args.plans_only:
                for r in append_child_records(child, "criteria", args.argv, PLANS, f"{granularity} seed {seed}"):
                    print(f"{r['granularity']}-{r['criterion']} seed {seed}: removed per layer "
                          f"{r['removed_per_layer']} of {r['units_per_layer']}", flush=True)
                continue
            for r in append_child_records(child, "criteria", args.argv, args.results, f"{granularity} seed {seed}"):
                print(f"{r['method']} seed {seed}: ratio {r['ratio_achieved']:.2f}x, right after the cut "
                      f"{r['accuracy_pruned']:.4f}, after {r['recovery_steps']} steps {r['accuracy']:.4f} "
                      f"(dense {r['dense_accuracy']:.4f})", flush=True)


if __name__ == "__main__":
    main()
