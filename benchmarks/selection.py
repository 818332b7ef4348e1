"""Is the cascade behind one-shot because of WHICH units it keeps, or because of HOW it spends recovery?

Takes the final cumulative plan of a finished ``benchmarks/cascade.py`` cascade run (original
indices, from its last stage checkpoint), applies it to the same dense model in one cut, and
recovers once with one-shot's budget (the cascade's stage budgets summed). The result, method
``cascade-units-oneshot-recovery``, differs from ``oneshot`` only in the units kept and from
``cascade`` only in the recovery schedule. Also records how many units the two plans share.

``--rewind K`` makes it a method at one-shot's budget (``cascade-rewindK``): a cascade of its own
recovers only K steps after layers and K after heads (none after channels), just to re-score;
its final plan is then cut from the dense model, which recovers once with the rest of the budget
(300 - 2K steps). Appends to benchmarks/results/cascade.jsonl.

    python -m benchmarks.selection --front-end raw --speed-jitter 0.03 --ratios 8.7 13.8
    python -m benchmarks.selection --front-end raw --speed-jitter 0.03 --ratios 8.7 13.8 --rewind 20
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks._common import (CHECKPOINTS, DATA, FRONT_ENDS, append_child_records, checkpoint_name, run_child,
                                set_threads, windows)
from benchmarks.cascade import RESULTS, recovery_steps, run_dir, variant_config

METHOD = "cascade-units-oneshot-recovery"


def _units(plan) -> set[tuple]:
    """Every removed unit as a hashable (kind, layer, index); heads and channels of removed layers are
    not counted again (plans made before select() skipped them could list them)."""
    out = {("layer", l, -1) for l in plan.layers}
    for kind, per_layer in (("head", plan.heads), ("channel", plan.channels)):
        out |= {(kind, l, u) for l, us in per_layer.items() if l not in plan.layers for u in us}
    return out


def _plan_of(run: Path):
    from cascadeprune.plan import PruningPlan

    state = json.loads((run / "checkpoints" / "state.json").read_text())
    if state["completed"] != len(state["config"]["stages"]) - 1 and state["config"]["method"] != "oneshot":
        raise SystemExit(f"{run}: the run did not finish (completed stage {state['completed']}); run it first")
    return PruningPlan.from_dict(state["plan"], source=str(run / "checkpoints" / "state.json"))


def _rewind_cascade(clf, ds, name: str, ratio: float, seed: int, speed_jitter: float, k: int):
    """Run a cascade that recovers k steps after layers and heads and none after channels; its plan."""
    from cascadeprune.methods.cascade import compress
    from cascadeprune.tasks.bearing.task import BearingTask

    cfg = variant_config("cascade", ratio, seed, speed_jitter=speed_jitter)
    for st in cfg.stages[:-1]:
        st.recovery.steps = k
    cfg.stages[-1].recovery.method = "none"
    out = run_dir(name, f"cascade-rewind{k}", ratio)
    task = BearingTask(ds.protocol, clf.classes, DATA, ds.windows, dataset=ds)  # calibration seed = run seed
    compress(clf, task, cfg.check(), out, progress=False)
    return _plan_of(out)


def run_one(model: str, protocol: str, seed: int, ratio: float, speed_jitter: float, front_end: str,
            rewind: int | None = None) -> dict:
    import copy

    import torch

    from cascadeprune.accounting import block_params
    from cascadeprune.memory import peak_rss_mb
    from cascadeprune.recovery.recover import recover
    from cascadeprune.storage import load_model
    from cascadeprune.surgery import apply_plan
    from cascadeprune.tasks.bearing.protocols import build_dataset
    from cascadeprune.tasks.bearing.train import evaluate

    set_threads()
    name = checkpoint_name(model, protocol, seed, speed_jitter, front_end)
    runs = {v: run_dir(name, v, ratio) for v in ("cascade", "oneshot")}
    oneshot_plan = _plan_of(runs["oneshot"])
    clf = load_model(CHECKPOINTS / name)
    dense = block_params(clf)
    win = windows()
    ds = build_dataset(protocol, DATA, win)
    cfg = variant_config("oneshot", ratio, seed, speed_jitter=speed_jitter)
    budget = sum(recovery_steps().values())
    t0 = time.perf_counter()
    if rewind is None:
        method, cascade_plan, steps, plan_from = METHOD, _plan_of(runs["cascade"]), budget, runs["cascade"].name
    else:
        if not 0 < 2 * rewind < budget:
            raise SystemExit(f"--rewind {rewind}: must leave steps for the final recovery (2 x K < {budget})")
        method, steps = f"cascade-rewind{rewind}", budget - 2 * rewind
        cascade_plan = _rewind_cascade(copy.deepcopy(clf), ds, name, ratio, seed, speed_jitter, rewind)
        plan_from = run_dir(name, method, ratio).name
    torch.manual_seed(seed * 1000)  # as compress() seeds its one-shot stage
    apply_plan(clf, cascade_plan, inplace=True)
    pruned = evaluate(clf, ds, "test")["accuracy"]
    rec_cfg = cfg.stages[-1].recovery
    rec_cfg.steps = steps
    from cascadeprune.tasks.bearing.task import BearingTask

    task = BearingTask(protocol, clf.classes, DATA, win, dataset=ds)
    rec = recover(clf, task, rec_cfg, seed=seed * 1000 + 1, progress=False)  # one-shot's recovery seed
    m = evaluate(clf, ds, "test")
    a, b = _units(cascade_plan), _units(oneshot_plan)
    return {"benchmark": "cascade", "model": model, "protocol": protocol, "method": method,
            "ratio_target": ratio, "ratio_achieved": round(dense / block_params(clf), 4), "seed": seed,
            "test_snr_db": None, "accuracy": round(m["accuracy"], 5), "macro_f1": round(m["macro_f1"], 5),
            "per_load_accuracy": m["per_load_accuracy"], "block_params": block_params(clf),
            "stages": [{"stage": 0, "granularity": "cascade units", "accuracy_pruned": pruned,
                        "accuracy_recovered": m["accuracy"], "recovery_steps": rec["steps"]}],
            "removed_units_shared_with_oneshot": round(len(a & b) / len(a | b), 4),
            "shares": {st.granularity: round(st.share, 4) for st in cfg.stages},
            "recovery_steps": recovery_steps() if rewind is None else {"layers": rewind, "heads": rewind,
                                                                       "channels": steps},
            "speed_jitter": speed_jitter, "dense_checkpoint": name, "front_end": front_end, "plan_from": plan_from,
            "wall_s": round(time.perf_counter() - t0, 1), "peak_rss_mb": round(peak_rss_mb())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="gpt2-10m")
    ap.add_argument("--protocol", default="cwru-4class-crossload")
    ap.add_argument("--ratios", nargs="+", type=float, default=[8.7, 13.8])
    ap.add_argument("--seeds", nargs="+", type=int, default=[42, 123, 456])
    ap.add_argument("--speed-jitter", type=float, default=0.0)
    ap.add_argument("--front-end", choices=sorted(FRONT_ENDS), default="spectrum")
    ap.add_argument("--rewind", type=int, default=None,
                    help="method cascade-rewindK at one-shot's budget: K recovery steps after layers and heads, "
                         "then the final plan cut from the dense model and recovered with the rest")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.argv = sys.argv[1:]
    if args.one:
        print(json.dumps(run_one(args.model, args.protocol, args.seeds[0], args.ratios[0], args.speed_jitter,
                                 args.front_end, args.rewind)))
        return
    for ratio in args.ratios:
        for seed in args.seeds:
            child = run_child("selection", "--one", "--model", args.model, "--protocol", args.protocol, "--ratios",
                              str(ratio), "--seeds", str(seed), "--speed-jitter", str(args.speed_jitter), "--front-end",
                              args.front_end, *([] if args.rewind is None else ["--rewind", str(args.rewind)]))
            for r in append_child_records(child, "selection", args.argv, RESULTS, f"{ratio}x seed {seed}"):
                print(f"{r['method']} {ratio:g}x seed {seed}: {r['accuracy']:.4f} (right after the cut "
                      f"{r['stages'][0]['accuracy_pruned']:.4f}); removed units shared with one-shot "
                      f"{r['removed_units_shared_with_oneshot']:.2f}", flush=True)


if __name__ == "__main__":
    main()
