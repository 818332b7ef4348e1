"""Cascade vs one-shot (and ablations) from the dense GPT-2-style classifiers, on CWRU cross-load.

Starts from benchmarks/checkpoints/<model>_<protocol>_seed<seed>[_raw][_sj<jitter>] (benchmarks/dense.py;
trained here first when missing). Every variant gets the same total recovery budget. Appends one
JSON record per run to benchmarks/results/cascade.jsonl (same keys as dense.jsonl).

    python -m benchmarks.cascade --ratios 2.5 5.8 8.7 13.8 --variants cascade oneshot --seeds 42 123 456
    python -m benchmarks.cascade --ratios 8.7 --variants cascade-reverse cascade-simultaneous cascade-norecovery
    python -m benchmarks.cascade --ratios 8.7 --variants cascade --shares 0.3,0.2,0.5 0,0.3,0.7 0.45,0.1,0.45
    python -m benchmarks.cascade --ratios 13.8 --variants cascade oneshot --recovery-scale 0.2   # 1/5 of the budget
    python -m benchmarks.cascade --front-end raw --speed-jitter 0.03 --ratios 8.7 13.8   # time-domain patches
    python -m benchmarks.cascade --front-end raw --speed-jitter 0.03 --ratios 8.7 --recovery distill
    python -m benchmarks.cascade --front-end raw --speed-jitter 0.03 --ratios 8.7 13.8 --lora-targets all
    python -m benchmarks.cascade --front-end raw --speed-jitter 0.03 --ratios 8.7 13.8 --recovery full --recovery-lr 2e-4
    python -m benchmarks.cascade --front-end raw --speed-jitter 0.03 --ratios 8.7 13.8 --variants cascade --recovery-split 1,1,13
    python -m benchmarks.cascade --front-end raw --speed-jitter 0.03 --ratios 8.7 13.8 --frozen-frontend   # adapters + head
    python -m benchmarks.cascade --front-end raw --speed-jitter 0.03 --ratios 8.7 13.8 --variants cascade --prune-steps 3,3,3
    python -m benchmarks.cascade --front-end raw --speed-jitter 0.03 --ratios 8.7 13.8 --allocation uniform
    python -m benchmarks.cascade --model gpt2-deep --front-end raw --speed-jitter 0.03 --ratios 8.7 13.8 --test-snr-db 0

``--test-snr-db DB`` also scores the final model on the test windows with white noise at DB added
(noise seeded by the run's seed, so every method of a seed sees the same noisy windows, as in
dense.py) and appends a second record for it (``test_snr_db``: DB; its ``stages`` are the clean run's).

Variants: ``cascade`` (layers -> heads -> channels, recovery after each), ``oneshot`` (scored
once on the dense model, one recovery with the summed budget), ``cascade-reverse`` (channels ->
heads -> layers), ``cascade-simultaneous`` (three iterations, each removing part of every
granularity at once, same recoveries), ``cascade-norecovery`` (no recovery at all).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._common import (CHECKPOINTS, DATA, FRONT_ENDS, HERE, RESULTS_DIR, ROOT, append_child_records,
                                checkpoint_name, child_command, run_child, set_threads, windows)
from benchmarks._common import compress_command as _compress_command

RESULTS = RESULTS_DIR / "cascade.jsonl"
RECOVERY_STEPS = {"layers": 60, "heads": 60, "channels": 180}  # 1 : 1 : 3 like the paper's 10/10/30 epochs
PRUNE_STEPS = (1, 1, 2)  # removal steps (re-scoring in between) of the layers, heads and channels stages


def run_dir(checkpoint: str, variant: str, ratio: float, recovery_scale: float = 1.0) -> Path:
    """benchmarks/runs/<this>: one compress output (checkpoints per stage, state.json with the plan)."""
    rs = "" if recovery_scale == 1 else f"_rec{recovery_scale:g}"
    return HERE / "runs" / f"{checkpoint}_{variant}_{ratio:g}x{rs}"


def recovery_steps(scale: float = 1.0, split: tuple[float, float, float] | None = None) -> dict[str, int]:
    """Recovery steps per stage: the paper's 1 : 1 : 3, or ``split`` of the same total (e.g. 0,0,1)."""
    if split is None:
        return {g: max(1, round(n * scale)) for g, n in RECOVERY_STEPS.items()}
    if len(split) != 3 or min(split) < 0 or sum(split) <= 0:
        raise SystemExit(f"--recovery-split needs three fractions >= 0 with a positive sum, got {split}")
    total = sum(recovery_steps(scale).values())
    first = {g: int(total * f / sum(split)) for g, f in zip(("layers", "heads"), split)}
    return {**first, "channels": total - sum(first.values())}


def variant_overrides(variant: str, shares: tuple[float, float, float] | None = None, speed_jitter: float = 0.0,
                      recovery_scale: float = 1.0, holdout_load: float | None = None, recovery: str = "lora",
                      lora_targets: str = "attention", recovery_lr: float | None = None,
                      recovery_split: tuple[float, float, float] | None = None, train_frontend: bool = True,
                      keep: str = "best_val", device: str = "cpu", prune_steps: tuple[int, int, int] | None = None,
                      allocation: str = "global") -> tuple[str, list[str]]:
    """The variant as ``cascadeprune compress`` arguments: (method, ``--set`` overrides)."""
    order = ["layers", "heads", "channels"]
    if variant == "cascade-reverse":
        order = order[::-1]
    method = {"oneshot": "oneshot", "cascade-simultaneous": "simultaneous"}.get(variant, "cascade")
    steps = recovery_steps(recovery_scale, recovery_split)
    stages = []
    for g in order:
        rec = {"method": "none" if variant == "cascade-norecovery" else recovery, "steps": steps[g],
               "targets": lora_targets, "keep": keep, "device": device,
               "task": {"speed_jitter": speed_jitter, "holdout_load": holdout_load, "train_frontend": train_frontend}}
        if recovery_lr is not None:  # else the engine's default
            rec["lr"] = recovery_lr
        stage = {"granularity": g, "steps": dict(zip(("layers", "heads", "channels"), prune_steps or PRUNE_STEPS))[g],
                 "recovery": rec}
        if shares is not None:
            stage["share"] = dict(zip(("layers", "heads", "channels"), shares))[g]
        if g == "channels":
            stage["allocation"] = allocation
        stages.append(stage)
    return method, ["stages=" + json.dumps(stages, separators=(",", ":"))]


def variant_config(variant: str, ratio: float, seed: int, *args, **kw):
    """The run's configuration, built exactly as the CLI builds it from ``compress_command``'s arguments."""
    from cascadeprune.methods.config import build_config

    method, sets = variant_overrides(variant, *args, **kw)
    return build_config(None, sets, ratio=ratio, method=method, seed=seed)


def compress_command(checkpoint: Path, protocol: str, variant: str, ratio: float, seed: int, out: Path, *args,
                     **kw) -> list[str]:
    """The ``cascadeprune compress`` command that reproduces a run (same config, same seed rule)."""
    method, sets = variant_overrides(variant, *args, **kw)
    return _compress_command(checkpoint, protocol, ratio, seed, out, method, sets=sets)


def run_one(model: str, protocol: str, seed: int, ratio: float, variant: str,
            shares: tuple[float, float, float] | None = None, speed_jitter: float = 0.0,
            recovery_scale: float = 1.0, holdout_load: float | None = None, front_end: str = "spectrum",
            recovery: str = "lora", lora_targets: str = "attention", recovery_lr: float | None = None,
            recovery_split: tuple[float, float, float] | None = None, train_frontend: bool = True,
            keep: str = "best_val", device: str = "cpu", prune_steps: tuple[int, int, int] | None = None,
            allocation: str = "global", test_snr_db: float | None = None) -> list[dict]:
    from cascadeprune.accounting import block_params
    from cascadeprune.memory import process_peak_rss_mb
    from cascadeprune.methods.cascade import compress
    from cascadeprune.storage import load_model
    from cascadeprune.tasks.bearing.protocols import build_dataset
    from cascadeprune.tasks.bearing.task import BearingTask
    from cascadeprune.tasks.bearing.train import evaluate

    set_threads()
    ckpt = CHECKPOINTS / checkpoint_name(model, protocol, seed, speed_jitter, front_end)
    if not ckpt.is_dir():
        subprocess.run(child_command("dense", "--models", model, "--protocols", protocol, "--seeds", str(seed),
                                     "--speed-jitter", str(speed_jitter), "--front-end", front_end, "--device", device),
                       check=True, cwd=ROOT)
    clf = load_model(ckpt)
    win = windows()
    ds = build_dataset(protocol, DATA, win)
    knobs = (shares, speed_jitter, recovery_scale, holdout_load, recovery, lora_targets, recovery_lr, recovery_split,
             train_frontend, keep, device, prune_steps, allocation)
    cfg = variant_config(variant, ratio, seed, *knobs)
    base_variant = variant
    if recovery != "lora":
        variant = f"{variant}-{recovery}"
    if lora_targets != "attention" and recovery != "full":
        variant = f"{variant}-lora{lora_targets}"
    if recovery_lr is not None:
        variant = f"{variant}-lr{recovery_lr:g}"
    if not train_frontend:
        variant = f"{variant}-fefrozen"
    if keep != "best_val":
        variant = f"{variant}-keep{keep}"
    steps = recovery_steps(recovery_scale, recovery_split)
    if recovery_split is not None and variant.startswith("cascade"):  # one-shot sums them: nothing to name
        variant = f"{variant}-rec{'-'.join(str(steps[g]) for g in ('layers', 'heads', 'channels'))}"
    if prune_steps is not None and variant != "oneshot":  # one-shot cuts once whatever the stages say
        variant = f"{variant}-it{'-'.join(str(n) for n in prune_steps)}"
    if allocation != "global":
        variant = f"{variant}-{allocation}"
    if holdout_load is not None:
        variant = f"{variant}-holdout{holdout_load:g}"
    if shares is not None:
        variant = f"{variant}-shares-{'-'.join(f'{x:g}' for x in shares)}"
    t0 = time.perf_counter()
    out = run_dir(ckpt.name, variant, ratio, recovery_scale)
    # the engine and seed rule of `cascadeprune compress` (calibration drawn with the run seed)
    task = BearingTask(protocol, clf.classes, DATA, win, dataset=ds)
    res = compress(clf, task, cfg, out, progress=False)
    command = compress_command(ckpt, protocol, base_variant, ratio, seed, out, *knobs)
    m = evaluate(res["model"], ds, "test")
    rec = {"benchmark": "cascade", "model": model, "protocol": protocol, "method": variant,
            "ratio_target": ratio, "ratio_achieved": round(res["ratio_achieved"], 4), "seed": seed,
            "test_snr_db": None, "accuracy": round(m["accuracy"], 5), "macro_f1": round(m["macro_f1"], 5),
            "per_load_accuracy": m["per_load_accuracy"], "block_params": block_params(res["model"]),
            "dense_accuracy": res["state"]["dense"]["accuracy"], "stages": res["state"]["stages"],
            "shares": {st.granularity: round(st.share, 4) for st in cfg.stages},
            "recovery_steps": steps, "speed_jitter": speed_jitter,
            "dense_checkpoint": ckpt.name, "front_end": front_end, "recovery": recovery,
            "lora_targets": lora_targets, "recovery_lr": cfg.stages[0].recovery.lr, "train_frontend": train_frontend,
            "keep": keep, "device": device,
            "wall_s": round(time.perf_counter() - t0, 1),
            "peak_rss_mb": round(process_peak_rss_mb()),  # the whole process, every stage included
            "command": shlex.join(command) + (f" --data-dir {DATA}" if DATA else "")}
    if test_snr_db is None:
        return [rec]
    noisy = build_dataset(protocol, DATA, win, snr_db=test_snr_db, noise_seed=seed, splits=("test",))
    n = evaluate(res["model"], noisy, "test")
    return [rec, rec | {"test_snr_db": test_snr_db, "accuracy": round(n["accuracy"], 5),
                        "macro_f1": round(n["macro_f1"], 5), "per_load_accuracy": n["per_load_accuracy"]}]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="gpt2-10m")
    ap.add_argument("--protocol", default="cwru-4class-crossload")
    ap.add_argument("--ratios", nargs="+", type=float, default=[2.5, 5.8, 8.7, 13.8])
    ap.add_argument("--variants", nargs="+", default=["cascade", "oneshot"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[42, 123, 456])
    ap.add_argument("--shares", nargs="+", default=None,
                    help="budget splits to sweep, each 'L,H,C' (e.g. 0.3,0.2,0.5); recorded in the method name")
    ap.add_argument("--speed-jitter", type=float, default=0.0,
                    help="start from the dense checkpoint trained with this speed jitter (<name>_sj<value>) and "
                         "use the same jitter in every recovery")
    ap.add_argument("--recovery-scale", type=float, default=1.0,
                    help="multiply every recovery budget (60/60/180 LoRA steps) by this")
    ap.add_argument("--holdout-load", type=float, default=None,
                    help="recover on the other training loads, keep the state best on this one (method -holdout<L>)")
    ap.add_argument("--front-end", choices=sorted(FRONT_ENDS), default="spectrum",
                    help="start from the dense checkpoint with this front end (benchmarks/dense.py --front-end)")
    ap.add_argument("--recovery", choices=["lora", "distill", "full"], default="lora",
                    help="recovery method of every stage (distill: LoRA trained on the dense model's logits too; "
                         "method name gets -<recovery>)")
    ap.add_argument("--lora-targets", choices=["attention", "all"], default="attention",
                    help="LoRA on the attention projections (the paper) or on every linear of the blocks")
    ap.add_argument("--recovery-lr", type=float, default=None, help="recovery learning rate (default: the engine's)")
    ap.add_argument("--recovery-split", default=None,
                    help="share the total recovery steps across layers,heads,channels (e.g. 0,0,1); default 1,1,3")
    ap.add_argument("--prune-steps", default=None,
                    help="removal steps of the layers,heads,channels stages, re-scoring in between (e.g. 3,3,3; "
                         "method -itL-H-C); default 1,1,2")
    ap.add_argument("--allocation", choices=["global", "uniform"], default="global",
                    help="channel selection: rank across layers, or the same share of every layer (method -uniform)")
    ap.add_argument("--frozen-frontend", action="store_true",
                    help="recovery trains only the adapters (or the backbone) and the head, not the front end "
                         "(method -fefrozen)")
    ap.add_argument("--keep", choices=["best_val", "last"], default="best_val",
                    help="state each recovery ends with (method -keeplast for last)")
    ap.add_argument("--device", default="cpu", help="where recovery trains (cuda on a GPU machine)")
    ap.add_argument("--test-snr-db", type=float, default=None,
                    help="also score the final model with white noise at this SNR added to the test windows "
                         "(a second record with test_snr_db set)")
    ap.add_argument("--results", type=Path, default=RESULTS, help="JSON Lines file the records are appended to")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.argv = sys.argv[1:]
    parse = lambda text: tuple(float(x) for x in text.split(","))  # noqa: E731
    if args.one:
        shares = parse(args.shares[0]) if args.shares else None
        print(json.dumps(run_one(args.model, args.protocol, args.seeds[0], args.ratios[0], args.variants[0], shares,
                                 args.speed_jitter, args.recovery_scale, args.holdout_load, args.front_end,
                                 args.recovery, args.lora_targets, args.recovery_lr,
                                 parse(args.recovery_split) if args.recovery_split else None,
                                 not args.frozen_frontend, args.keep, args.device,
                                 tuple(int(x) for x in args.prune_steps.split(",")) if args.prune_steps else None,
                                 args.allocation, args.test_snr_db)))
        return
    for ratio in args.ratios:
        for variant in args.variants:
            for shares in args.shares or [None]:
                for seed in args.seeds:
                    extra = (["--shares", shares] if shares else []) + ["--speed-jitter", str(args.speed_jitter),
                                                                        "--recovery-scale", str(args.recovery_scale),
                                                                        "--front-end", args.front_end,
                                                                        "--recovery", args.recovery,
                                                                        "--lora-targets", args.lora_targets]
                    extra += [] if args.recovery_lr is None else ["--recovery-lr", str(args.recovery_lr)]
                    extra += [] if args.recovery_split is None else ["--recovery-split", args.recovery_split]
                    extra += [] if args.holdout_load is None else ["--holdout-load", str(args.holdout_load)]
                    extra += ["--frozen-frontend"] if args.frozen_frontend else []
                    extra += [] if args.prune_steps is None else ["--prune-steps", args.prune_steps]
                    extra += ["--allocation", args.allocation]
                    extra += ["--keep", args.keep, "--device", args.device]
                    extra += [] if args.test_snr_db is None else ["--test-snr-db", str(args.test_snr_db)]
                    child = run_child("cascade", "--one", "--model", args.model, "--protocol", args.protocol,
                                      "--ratios", str(ratio), "--variants", variant, "--seeds", str(seed), *extra)
                    _record(child, args, variant, ratio, seed)


def _record(child, args, variant, ratio, seed) -> None:
    for rec in append_child_records(child, "cascade", args.argv, args.results, f"{variant} {ratio} {seed}"):
        noise = "" if rec["test_snr_db"] is None else f" at {rec['test_snr_db']:g} dB"
        print(f"{rec['method']} {ratio:g}x seed {seed}{noise}: {rec['accuracy']:.4f} "
              f"(dense {rec['dense_accuracy']:.4f} clean), "
              f"{rec['ratio_achieved']:.2f}x, {rec['wall_s']} s", flush=True)


if __name__ == "__main__":
    main()
