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
from cascadeprune.arch.resolve import dense_dims, spec_for
from cascadeprune.inspection import inspect_model
from cascadeprune.plan import PruningPlan, random_plan
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
    if spec_for(model).heads_refused:  # e.g. OLMo-2: layers and channels only
        plan = PruningPlan(plan.layers, {}, plan.channels)
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
    from cascadeprune.methods.config import CalibrationConfig, CompressConfig, RecoveryConfig, StageConfig
    from cascadeprune.storage.load import load_backbone
    from cascadeprune.tasks.bearing.classifier import FrontEndConfig, VibrationClassifier
    from cascadeprune.tasks.bearing.protocols import WindowConfig, build_dataset
    from cascadeprune.tasks.bearing.task import BearingTask
    from cascadeprune.tasks.bearing.train import TrainConfig, evaluate, train_classifier

    windows = WindowConfig(window=512, stride=256)
    ds = build_dataset("synthetic", windows=windows)
    torch.manual_seed(seed)
    clf = VibrationClassifier(load_backbone("gpt2-mini", seed=seed), ds.classes, FrontEndConfig(512, 16),
                              meta={"protocol": "synthetic", "backbone": "gpt2-mini", "seed": seed})
    print(f"[1/4] training gpt2-mini on the synthetic bearing protocol ({len(ds.x['train'])} windows)")
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
                                                                     recovery=rec(r_channels))],
                         calibration=CalibrationConfig(mix={"synthetic": 0.8, "synthetic@snr=0": 0.2}, n=256,
                                                       seed=0)).check()
    print(f"[2/4] compressing {ratio:g}x: layers -> heads -> channels with LoRA recovery between stages")
    task = BearingTask("synthetic", ds.classes, windows=windows, dataset=ds)
    result = run_compression(clf, task, cfg, root / "compressed", name="gpt2-mini (demo)")
    report, paths = result["report"], result["paths"]
    return {"report": report, "paths": paths, "dense_accuracy": dense_acc["accuracy"]}


def deploy_demo(root: Path) -> bool:
    """Export dense and compressed to ONNX (compressed also int8), bench all in fresh processes."""
    from cascadeprune.deploy.bench import bench_artifacts, table
    from cascadeprune.deploy.export import export_classifier

    print("[4/4] on-device: ONNX export (parity-checked on the test windows) and batch-1 latency / memory, "
          "each artifact in a fresh process, 1 thread\n")
    jobs = {"dense.onnx": (root / "dense", False), "compressed.onnx": (root / "compressed" / "model", False),
            "compressed.int8.onnx": (root / "compressed" / "model", True)}
    infos = {name: export_classifier(src, root / "deploy" / name, int8=q, overwrite=True, progress=False)
             for name, (src, q) in jobs.items()}
    for name, info in infos.items():
        acc, par = info["parity"]["accuracy"], info["parity"]
        vs = (f"argmax agreement with fp32 {100 * par['int8']['argmax_agreement_vs_fp32']:.1f} %" if info["int8"] else
              f"max |delta logit| vs PyTorch {par['fp32']['max_abs_logit_diff']:.1e}")
        print(f"  {name:<22} {info['file_mb']:6.2f} MB, {vs}, test accuracy "
              f"{100 * acc['onnx_int8' if info['int8'] else 'onnx_fp32']:.2f} %")
    paths = [root / "dense", root / "compressed" / "model"] + [root / "deploy" / n for n in jobs]
    recs = bench_artifacts(paths, runs=300, warmup=30, progress=False)
    print("\n" + table(recs) + "\n")
    (root / "deploy" / "bench.json").write_text(json.dumps(recs, indent=2) + "\n")
    return all(i["parity"]["fp32"]["argmax_agreement"] == 1.0 for i in infos.values())


def run_demo(out: str) -> int:
    root = Path(out)
    result = compress_demo(root)
    print("\n[3/4] result\n")
    print(result["paths"]["markdown"].read_text())
    print(f"report: {result['paths']['markdown']}, {result['paths']['json']}, {result['paths']['plot']}\n")
    deploy_ok = deploy_demo(root)
    print("surgery check on a tiny model of every supported family:\n")
    rows = [demo_family(f, root / "surgery") for f in TINY_CONFIGS]
    header = f"{'family':<12} {'attention':<10} {'ffn':<7} {'SIA':<9} {'blocks dense->pruned':>22} {'ratio':>6} " \
             f"{'|pruned-masked|':>16} {'|reload-pruned|':>16}  loader"
    print(header)
    print("-" * len(header))
    for r in rows:
        loader = "stock Auto" if r["stock_loadable"] else "load_model"
        print(f"{r['family']:<12} {r['attention']:<10} {r['ffn']:<7} {r['sia']:<9} "
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
    print(f"{'OK' if deploy_ok else 'FAILED'}: ONNX exports equal PyTorch (argmax 100 %, |delta| <= 1e-4); "
          f"artifacts and bench.json in {root / 'deploy'}/")
    return 0 if ok and ratio_ok and deploy_ok else 1
