"""Dense (uncompressed) accuracy of every backbone on the CWRU cross-load protocols.

For each (model, protocol, seed) a fresh subprocess trains a classifier (so peak memory is that
run's own), evaluates it on the clean test set and with white noise at 0 dB SNR, saves it under
benchmarks/checkpoints/ (not committed; the pruning benchmarks start from these), and appends
two JSON records (clean, 0 dB) to benchmarks/results/dense.jsonl. The ``fft-linear`` reference
(a linear classifier on log-FFT magnitudes of the same windows) gets the same two records.

    python benchmarks/dense.py --models gpt2-10m llama-10m --protocols cwru-4class-crossload \
        --seeds 42 123 456
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "dense.jsonl"
CHECKPOINTS = HERE / "checkpoints"
DATA = os.environ.get("CASCADEPRUNE_DATA", str(HERE.parent.parent / "shared" / "data"))

# One recipe per backbone: what a user would run with `cascadeprune train`.
RECIPES = {
    "gpt2-10m": dict(lora=False, lr=5e-4, steps=400),
    "gpt2-deep": dict(lora=False, lr=5e-4, steps=400),  # gpt2-10m's recipe at the paper's depth (12 layers)
    "gpt2-mini": dict(lora=False, lr=1e-3, steps=400),  # 1.2 M block params: the capacity-bound setting
    "llama-10m": dict(lora=False, lr=5e-4, steps=400),
    "all-minilm-l6-v2": dict(lora=False, lr=2e-4, steps=400),
    "smollm2-135m": dict(lora=True, lr=1e-3, steps=200),  # the paper's recovery recipe: LoRA r4/a16 on attention
}
FRONT_END = dict(window=1024, patch=32, features="spectrum", global_token=True)
# Named front ends. "spectrum" (the product's default) makes cross-load CWRU nearly linearly separable,
# so pruning the transformer barely matters; "raw" (time-domain patches, no global spectrum token) is
# closer to the paper's GPT-2 ("trained on vibration patches") and leaves the work to the transformer.
FRONT_ENDS = {"spectrum": FRONT_END, "raw": FRONT_END | dict(features="raw", global_token=False)}


def windows():
    """The benchmarks' windowing: every front end uses the same windows, half-overlapping."""
    from cascadeprune.tasks.bearing.protocols import WindowConfig

    return WindowConfig(window=FRONT_END["window"], stride=FRONT_END["window"] // 2)


def checkpoint_name(model: str, protocol: str, seed: int, speed_jitter: float = 0.0,
                    front_end: str = "spectrum") -> str:
    """benchmarks/checkpoints/<this>: one dense classifier per (model, protocol, seed, jitter, front end)."""
    fe = "" if front_end == "spectrum" else f"_{front_end}"
    return f"{model}_{protocol}_seed{seed}{fe}" + (f"_sj{speed_jitter:g}" if speed_jitter else "")


def common(args, script: str = "dense.py") -> dict:
    """Provenance every record carries: date, the command that produced it, commit and machine."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=HERE).stdout.strip() or os.environ.get("CASCADEPRUNE_COMMIT", "")
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": f"python benchmarks/{script} " + " ".join(args.argv), "commit": commit,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {gpu_name() or 'no GPU'}"}


def gpu_name() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def set_threads() -> None:
    """All cores, or OMP_NUM_THREADS when set (several benchmark processes sharing one machine)."""
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1))


def append_child_records(child: subprocess.CompletedProcess, args, results: Path, script: str,
                         what: str) -> list[dict]:
    """Append the JSON record(s) a ``--one`` child printed last, with provenance; [] if it failed."""
    if child.returncode != 0:
        print(f"FAILED {what}:\n{child.stderr[-3000:]}", file=sys.stderr)
        return []
    out = json.loads(child.stdout.strip().splitlines()[-1])
    recs = [r | common(args, script) for r in (out if isinstance(out, list) else [out])]
    with open(results, "a") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
    return recs


def run_one(model: str, protocol: str, seed: int, speed_jitter: float = 0.0, front_end: str = "spectrum",
            device: str = "cpu") -> list[dict]:
    """Train + evaluate in this process; return the clean and 0 dB records.

    ``speed_jitter`` > 0 time-stretches training windows (a load change is a speed change); such
    runs are recorded as method ``dense-speedjitter<value>`` and checkpointed apart."""
    import torch

    from cascadeprune.accounting import block_params
    from cascadeprune.deploy.memory import peak_rss_mb
    from cascadeprune.recovery import LoRAConfig, add_lora, merge_lora
    from cascadeprune.storage import save_model
    from cascadeprune.storage.load import load_backbone
    from cascadeprune.tasks.bearing.classifier import FrontEndConfig, VibrationClassifier
    from cascadeprune.tasks.bearing.protocols import build_dataset
    from cascadeprune.tasks.bearing.train import TrainConfig, evaluate, train_classifier

    set_threads()
    recipe = RECIPES[model]
    win = windows()
    ds = build_dataset(protocol, DATA, win)
    noisy = build_dataset(protocol, DATA, win, snr_db=0.0, noise_seed=seed, splits=("test",))
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    clf = VibrationClassifier(load_backbone(model, seed=seed), ds.classes, FrontEndConfig(**FRONT_ENDS[front_end]),
                              meta={"protocol": protocol, "backbone": model, "seed": seed})
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
    from cascadeprune.deploy.memory import peak_rss_mb
    from cascadeprune.tasks.bearing.protocols import build_dataset
    from cascadeprune.tasks.bearing.reference import FFTLinear
    from cascadeprune.tasks.bearing.train import metrics

    win = windows()
    ds = build_dataset(protocol, DATA, win)
    noisy = build_dataset(protocol, DATA, win, snr_db=0.0, noise_seed=seed, splits=("test",))
    t0 = time.perf_counter()
    probe = FFTLinear(seed=seed).fit(ds.x["train"], ds.y["train"], len(ds.classes))
    wall = time.perf_counter() - t0
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
    args.results.parent.mkdir(parents=True, exist_ok=True)
    for protocol in args.protocols:
        for model in args.models:
            for seed in args.seeds:
                child = subprocess.run([sys.executable, __file__, "--one", "--models", model, "--protocols", protocol,
                                        "--seeds", str(seed), "--speed-jitter", str(args.speed_jitter),
                                        "--front-end", args.front_end, "--device", args.device],
                                       capture_output=True, text=True)
                recs = append_child_records(child, args, args.results, "dense.py", f"{model} {protocol} {seed}")
                if not recs:
                    continue
                clean = recs[0]
                print(f"{protocol} {model} seed {seed}: accuracy {clean['accuracy']:.4f} "
                      f"(0 dB: {recs[1]['accuracy']:.4f}), {clean['wall_s']} s, {clean['peak_rss_mb']} MB", flush=True)


if __name__ == "__main__":
    main()
