"""``make demo``: the product's main job on the embedded default, no downloads.

Part 1 trains a small vibration classifier (GPT-2-style, 6 layers) on the synthetic bearing
protocol and compresses it about 8x with the cascade (layers -> heads -> channels, LoRA recovery
between stages), printing the before/after table and writing the report.

Part 2 checks the surgery on a tiny model of every supported family. For each family: inspect, apply a mixed plan (one layer, ~40% of heads, ~30% of FFN channels),
check the pruned model equals the dense model with the same units masked, save, reload, and
check the reloaded model is identical. Prints one table row per family and writes the pruned
directories and a JSON summary under ``out``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch

from cascadeprune.accounting import block_params
from cascadeprune.arch.resolve import dense_dims
from cascadeprune.inspection import inspect_model
from cascadeprune.plan import random_plan
from cascadeprune.storage import load_model, save_model
from cascadeprune.storage.sources import TINY_CONFIGS, tiny_model
from cascadeprune.surgery import apply_plan, mask_plan


def _out(model, x):
    return model(x)[0]


@torch.no_grad()
def demo_family(family: str, out: Path, seed: int = 0) -> dict:
    model = tiny_model(family, seed)
    info = inspect_model(model)
    plan = random_plan(dense_dims(model), random.Random(seed), layers=0.25, heads=0.4, channels=0.3)
    x = torch.randint(0, model.config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(seed))
    with mask_plan(model, plan):
        masked = _out(model, x)
    pruned = apply_plan(model, plan)
    diff = (_out(pruned, x) - masked).abs().max().item()
    path = save_model(pruned, out / family, overwrite=True)
    reloaded = load_model(path)
    reload_diff = (_out(reloaded, x) - _out(pruned, x)).abs().max().item()
    rec = pruned.config.cascadeprune
    return {
        "family": family,
        "attention": f"{info['attention']['kind']} D={info['attention']['group_size']}",
        "ffn": info["ffn"]["kind"],
        "sia": "holds" if info["sia"]["holds"] else "violated",
        "block_params_dense": block_params(model),
        "block_params_pruned": block_params(pruned),
        "ratio": block_params(model) / block_params(pruned),
        "max_abs_diff_vs_masked": diff,
        "max_abs_diff_reload": reload_diff,
        "stock_loadable": rec["stock_loadable"],
        "plan": plan.to_dict(),
    }


def compress_demo(root: Path, ratio: float = 8.0, seed: int = 42, train_steps: int = 300,
                  recovery_steps: tuple[int, int, int] = (60, 60, 180)) -> dict:
    """Train gpt2-mini on `synthetic`, compress it `ratio`x with the cascade, write everything."""
    from cascadeprune.methods.cascade import run_compression
    from cascadeprune.methods.config import CompressConfig, RecoveryConfig, StageConfig
    from cascadeprune.storage.load import load_backbone
    from cascadeprune.tasks.bearing.calibration import build_calibration
    from cascadeprune.tasks.bearing.classifier import FrontEndConfig, VibrationClassifier
    from cascadeprune.tasks.bearing.protocols import WindowConfig, build_dataset
    from cascadeprune.tasks.bearing.train import TrainConfig, evaluate, train_classifier

    windows = WindowConfig(window=512, stride=256)
    ds = build_dataset("synthetic", windows=windows)
    torch.manual_seed(seed)
    clf = VibrationClassifier(load_backbone("gpt2-mini", seed=seed), ds.classes, FrontEndConfig(512, 16),
                              meta={"protocol": "synthetic", "backbone": "gpt2-mini", "seed": seed})
    print(f"[1/3] training gpt2-mini on the synthetic bearing protocol ({len(ds.x['train'])} windows)")
    train_classifier(clf, ds, TrainConfig(max_steps=train_steps, lr=2e-3, seed=seed, warmup_steps=20, eval_every=50,
                                          speed_jitter=0.03), desc="train")
    save_model(clf, root / "dense", overwrite=True)
    dense_acc = evaluate(clf, ds, "test")
    print(f"      dense test accuracy {100 * dense_acc['accuracy']:.2f} %")
    rec = lambda steps: RecoveryConfig(method="lora", steps=steps, lr=2e-3)  # noqa: E731
    r_layers, r_heads, r_channels = recovery_steps
    cfg = CompressConfig(ratio=ratio, seed=seed, stages=[StageConfig("layers", recovery=rec(r_layers)),
                                                         StageConfig("heads", recovery=rec(r_heads)),
                                                         StageConfig("channels", steps=2,
                                                                     recovery=rec(r_channels))]).check()
    calib = build_calibration({"synthetic": 0.8, "synthetic@snr=0": 0.2}, 256, ds.classes, seed=0, windows=windows)
    print(f"[2/3] compressing {ratio:g}x: layers -> heads -> channels with LoRA recovery between stages")
    result = run_compression(clf, ds, cfg, root / "compressed", (calib.x, calib.y), name="gpt2-mini (demo)",
                             task="synthetic")
    report, paths = result["report"], result["paths"]
    return {"report": report, "paths": paths, "dense_accuracy": dense_acc["accuracy"]}


def run_demo(out: str) -> int:
    root = Path(out)
    result = compress_demo(root)
    print("\n[3/3] result\n")
    print(result["paths"]["markdown"].read_text())
    print(f"report: {result['paths']['markdown']}, {result['paths']['json']}, {result['paths']['plot']}\n")
    print("surgery check on a tiny model of every supported family:\n")
    rows = [demo_family(f, root / "surgery") for f in TINY_CONFIGS]
    header = f"{'family':<9} {'attention':<10} {'ffn':<7} {'SIA':<9} {'blocks dense->pruned':>22} {'ratio':>6} " \
             f"{'|pruned-masked|':>16} {'|reload-pruned|':>16}  loader"
    print(header)
    print("-" * len(header))
    for r in rows:
        loader = "stock Auto" if r["stock_loadable"] else "load_model"
        print(f"{r['family']:<9} {r['attention']:<10} {r['ffn']:<7} {r['sia']:<9} "
              f"{r['block_params_dense']:>10,} ->{r['block_params_pruned']:>9,} {r['ratio']:>6.2f} "
              f"{r['max_abs_diff_vs_masked']:>16.2e} {r['max_abs_diff_reload']:>16.2e}  {loader}")
    (root / "surgery" / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")
    ok = all(r["max_abs_diff_vs_masked"] <= 1e-5 and r["max_abs_diff_reload"] == 0.0 for r in rows)
    ratio_ok = abs(result["report"]["ratio_achieved"] / result["report"]["ratio_target"] - 1) <= 0.01
    print(f"\n{'OK' if ok else 'FAILED'}: physical pruning equals masking (<= 1e-5) and reloads identically; "
          f"pruned models and summary.json in {root / 'surgery'}/")
    print(f"{'OK' if ratio_ok else 'FAILED'}: compressed {result['report']['ratio_achieved']:.2f}x "
          f"(target {result['report']['ratio_target']:g}x); dense {100 * result['dense_accuracy']:.2f} % -> "
          f"compressed {100 * result['report']['accuracy']:.2f} % test accuracy")
    return 0 if ok and ratio_ok else 1
