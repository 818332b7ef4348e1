"""Dense (uncompressed) accuracy of every backbone on the CWRU cross-load protocols.

For each (model, protocol, seed) a fresh subprocess trains a classifier (so peak memory is that
run's own), evaluates it on the clean test set and with white noise at 0 dB SNR, saves it under
benchmarks/checkpoints/ (not committed; the pruning benchmarks start from these), and appends
two JSON records (clean, 0 dB) to benchmarks/results/dense.jsonl. The ``fft-linear`` reference
(a linear classifier on log-FFT magnitudes of the same windows) gets the same two records.

    python -m benchmarks.dense --models gpt2-10m llama-10m --protocols cwru-4class-crossload \
        --seeds 42 123 456
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks._common import (CHECKPOINTS, DATA, FRONT_ENDS, RECIPES, RESULTS_DIR, append_child_records,
                                checkpoint_name, fft_probe, run_child, set_threads, windows)

RESULTS = RESULTS_DIR / "dense.jsonl"


def run_one(model: str, protocol: str, seed: int, speed_jitter: float = 0.0, front_end: str = "spectrum",
            device: str = "cpu") -> list[dict]:
    """Train + evaluate in this process; return the clean and 0 dB records.

    ``speed_jitter`` > 0 time-stretches training windows (a load change is a speed change); such
    runs are recorded as method ``dense-speedjitter<value>`` and checkpointed apart."""
    from cascadeprune.accounting import block_params
    from cascadeprune.memory import peak_rss_mb
    from cascadeprune.recovery import LoRAConfig, add_lora, merge_lora
    from cascadeprune.storage import save_model
    from cascadeprune.tasks.bearing.protocols import build_dataset
    from cascadeprune.tasks.bearing.train import TrainConfig, evaluate, train_classifier
    from cascadeprune.tasks.bearing.workflow import new_classifier

    set_threads()
    recipe = RECIPES[model]
    win = windows()
    ds = build_dataset(protocol, DATA, win)
    noisy = build_dataset(protocol, DATA, win, snr_db=0.0, noise_seed=seed, splits=("test",))
    t0 = time.perf_counter()
    fe = FRONT_ENDS[front_end]  # the classifier `cascadeprune train` builds (its seed drawn first), + the seed
    clf = new_classifier(protocol, model, ds.classes, fe["window"], fe["patch"], fe["features"], fe["global_token"],
                         seed)
    clf.meta["seed"] = seed
    if recipe["lora"]:
        clf = add_lora(clf, LoRAConfig(rank=4, alpha=16))
    cfg = TrainConfig(max_steps=recipe["steps"], lr=recipe["lr"], batch_size=32, seed=seed, warmup_steps=30,
                      eval_every=50, patience=4, speed_jitter=speed_jitter, device=device)
    method = "dense" if not speed_jitter else f"dense-speedjitter{speed_jitter:g}"
    report = train_classifier(clf, ds, cfg, progress=False)
    if recipe["lora"]:
        clf = merge_lora(clf)
    wall = time.perf_counter() - t0
    save_model(clf, CHECKPOINTS / checkpoint_name(model, protocol, seed, speed_jitter, front_end), overwrite=True)
    out = []
    for snr, data in ((None, ds), (0.0, noisy)):
        m = evaluate(clf, data, "test")
        out.append({"benchmark": "dense", "model": model, "protocol": protocol, "method": method,
                    "ratio_target": 1.0, "ratio_achieved": 1.0, "seed": seed, "test_snr_db": snr,
                    "accuracy": round(m["accuracy"], 5), "macro_f1": round(m["macro_f1"], 5),
                    "per_load_accuracy": m["per_load_accuracy"], "block_params": block_params(clf),
                    "train_steps": report["steps"], "best_val_accuracy": round(report["best_val_accuracy"], 5),
                    "front_end": front_end, "device": device, "recipe": recipe | {"front_end": FRONT_ENDS[front_end],
                                                                "speed_jitter": speed_jitter}, "wall_s": round(wall, 1),
                    "peak_rss_mb": round(peak_rss_mb())})
    return out


def run_fft(protocol: str, seed: int) -> list[dict]:
    from cascadeprune.memory import peak_rss_mb
    from cascadeprune.tasks.bearing.protocols import build_dataset
    from cascadeprune.tasks.bearing.train import metrics

    probe, ds, wall = fft_probe(protocol, seed)
    noisy = build_dataset(protocol, DATA, windows(), snr_db=0.0, noise_seed=seed, splits=("test",))
    out = []
    for snr, data in ((None, ds), (0.0, noisy)):
        m = metrics(data.y["test"], probe.predict(data.x["test"]), ds.classes, data.load["test"])
        out.append({"benchmark": "dense", "model": "fft-linear", "protocol": protocol, "method": "fft-linear",
                    "ratio_target": 1.0, "ratio_achieved": 1.0, "seed": seed, "test_snr_db": snr,
                    "accuracy": round(m["accuracy"], 5), "macro_f1": round(m["macro_f1"], 5),
                    "per_load_accuracy": m["per_load_accuracy"], "block_params": 0,
                    "wall_s": round(wall, 1), "peak_rss_mb": round(peak_rss_mb())})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["fft-linear", "gpt2-10m", "llama-10m", "all-minilm-l6-v2"],
                    choices=["fft-linear", *RECIPES])
    ap.add_argument("--protocols", nargs="+", default=["cwru-4class-crossload", "cwru-10class-crossload"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[42, 123, 456])
    ap.add_argument("--speed-jitter", type=float, default=0.0, help="training augmentation (see run_one)")
    ap.add_argument("--front-end", choices=sorted(FRONT_ENDS), default="spectrum",
                    help="vibration front end (see FRONT_ENDS); non-default ones are checkpointed apart")
    ap.add_argument("--device", default="cpu", help="where training runs (cuda on a GPU machine)")
    ap.add_argument("--results", type=Path, default=RESULTS, help="JSON Lines file the records are appended to")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # child mode: one run, print JSON
    args = ap.parse_args()
    args.argv = sys.argv[1:]
    if args.one:
        (model,), (protocol,), (seed,) = args.models, args.protocols, args.seeds
        recs = (run_fft(protocol, seed) if model == "fft-linear"
                else run_one(model, protocol, seed, args.speed_jitter, args.front_end, args.device))
        print(json.dumps(recs))
        return
    for protocol in args.protocols:
        for model in args.models:
            for seed in args.seeds:
                child = run_child("dense", "--one", "--models", model, "--protocols", protocol, "--seeds", str(seed),
                                  "--speed-jitter", str(args.speed_jitter), "--front-end", args.front_end,
                                  "--device", args.device)
                recs = append_child_records(child, "dense", args.argv, args.results, f"{model} {protocol} {seed}",
                                            args.device)
                if not recs:
                    continue
                clean = recs[0]
                print(f"{protocol} {model} seed {seed}: accuracy {clean['accuracy']:.4f} "
                      f"(0 dB: {recs[1]['accuracy']:.4f}), {clean['wall_s']} s, {clean['peak_rss_mb']} MB", flush=True)


if __name__ == "__main__":
    main()
