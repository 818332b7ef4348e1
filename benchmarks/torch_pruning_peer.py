"""An outside peer: Torch-Pruning (Fang et al., "DepGraph: Towards Any Structural Pruning", CVPR 2023) through
its public API on the dense bearing classifiers, at the frontier's ratios; where it fails, the failure and the
versions are the record.

Torch-Pruning is not a dependency of the project: install it apart from the project's environment, e.g.

    pip install --no-deps --target /tmp/tp-site torch-pruning==1.6.1
    PYTHONPATH=src:/tmp/tp-site python benchmarks/torch_pruning_peer.py --ratios 1.3 2.5

What runs: ``tp.pruner.MetaPruner`` with ``tp.importance.MagnitudeImportance(p=1)`` (L1, its documented default
kind), one shot, the same fraction in every layer (its ``global_pruning=False`` default); the front end, the
head and (``--units ffn``) every attention projection are ``ignored_layers``, so only FFN channels (the up
projection's outputs and the down projection's inputs, which DepGraph couples) go; the block-parameter ratio is
reached within 1 % by bisecting ``pruning_ratio``. Accuracy is measured right after the cut (no recovery: the
pruned modules no longer match the model's config, so the project's LoRA recovery, which resolves the model
through the architecture table, is not applied; said in the record). ``--ours`` runs the same cut (FFN channels, L1,
same share per layer, no recovery) in this project's engine, for a like-for-like check. Appends to
results/torch_pruning.jsonl.

    PYTHONPATH=src python benchmarks/torch_pruning_peer.py --models all-minilm-l6-v2 --ratios 1.3 2.5 --ours
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from dense import CHECKPOINTS, DATA, windows  # noqa: E402
from frontier import provenance  # noqa: E402

RESULTS = HERE / "results" / "torch_pruning.jsonl"
MODELS = {"all-minilm-l6-v2": "all-minilm-l6-v2_cwru-4class-crossload_seed42",
          "gpt2-deep": "gpt2-deep_cwru-4class-crossload_seed42_raw_sj0.03"}


def versions() -> dict:
    import platform

    import torch
    import torch_pruning as tp
    import transformers

    from importlib.metadata import version

    # the wheel's version (torch_pruning.__version__ of the 1.6.1 wheel still says 1.6.0)
    return {"torch_pruning": version("torch-pruning"), "torch_pruning_module": tp.__version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version()}


def block_count(clf) -> int:
    from cascadeprune.arch.resolve import resolve

    return sum(sum(p.numel() for p in l.module.parameters()) for l in resolve(clf).layers)


def prune(clf, fraction: float, units: str):
    """A copy of ``clf`` with ``fraction`` of every layer's prunable channels removed by Torch-Pruning."""
    import torch
    import torch_pruning as tp

    from cascadeprune.arch.resolve import resolve

    m = copy.deepcopy(clf).eval()
    layers = resolve(m).layers
    keep = {id(l.up) for l in layers} if units == "ffn" else set()
    ignored = [mod for mod in m.modules() if isinstance(mod, torch.nn.Linear) and id(mod) not in keep]
    ignored += [m.frontend, m.head]
    x = torch.randn(2, m.frontend.cfg.window)
    pruner = tp.pruner.MetaPruner(m, x, importance=tp.importance.MagnitudeImportance(p=1), pruning_ratio=fraction,
                                  ignored_layers=ignored)
    pruner.step()
    return m


def run(model: str, ratio: float, units: str) -> dict:
    import torch

    from cascadeprune.storage import load_model
    from cascadeprune.tasks.bearing.protocols import build_dataset
    from cascadeprune.tasks.bearing.train import evaluate

    rec = {"benchmark": "torch_pruning", "model": model, "method": f"torch-pruning-l1-{units}", "ratio_target": ratio,
           "seed": 42, "test_snr_db": None, "recovery_steps": 0, **versions()}
    clf = load_model(CHECKPOINTS / MODELS[model]) if (CHECKPOINTS / MODELS[model]).is_dir() else load_model(
        Path("/work/main/benchmarks/checkpoints") / MODELS[model])
    dense = block_count(clf)
    t0 = time.perf_counter()
    try:
        lo, hi, best = 0.0, 0.97, None
        for _ in range(14):  # bisection on the per-layer fraction until the block ratio is within 1 %
            mid = (lo + hi) / 2
            small = prune(clf, mid, units)
            got = dense / sum(p.numel() for p in _blocks(small))
            best = (abs(got / ratio - 1), mid, got, small)
            if abs(got / ratio - 1) <= 0.005:
                break
            lo, hi = (mid, hi) if got < ratio else (lo, mid)
        _, frac, got, small = best
        rec |= {"pruning_ratio": round(frac, 4), "ratio_achieved": round(got, 4)}
        if got < 1.0001:  # nothing removed: the projections are of a type it does not prune
            from cascadeprune.arch.resolve import resolve

            kind = type(resolve(clf).layers[0].up).__name__
            return rec | {"status": "failed", "error": f"removed no block parameter at any pruning_ratio up to 0.97: "
                          f"the FFN projections are {kind} modules, which Torch-Pruning leaves as unwrapped parameters"}
        if abs(got / ratio - 1) > 0.01:
            return rec | {"status": "unreachable", "error": f"{units} units alone reach at most {got:.3f}x"}
        ds = build_dataset("cwru-4class-crossload", DATA, windows(), splits=("test",))
        with torch.no_grad():
            m = evaluate(small, ds, "test")
        return rec | {"status": "ok", "test_accuracy": round(m["accuracy"], 5),
                      "dense_test_accuracy": round(evaluate(clf, ds, "test")["accuracy"], 5),
                      "wall_s": round(time.perf_counter() - t0, 1)}
    except Exception as e:  # the failure is the result
        return rec | {"status": "failed", "error": f"{type(e).__name__}: {e}"[:500],
                      "traceback_tail": traceback.format_exc()[-800:]}


OURS_STAGES = '[{"granularity":"channels","criterion":"l1","allocation":"uniform","recovery":{"method":"none"}}]'


def ours(model: str, ratio: float) -> dict:
    """The same cut in this project's engine: FFN channels only, L1 of the coupled channel, the same share of every
    layer, no recovery (``cascadeprune compress`` in this process; its command is in the record)."""
    import shlex

    from cascadeprune.cli import main as cli

    ckpt = CHECKPOINTS / MODELS[model]
    ckpt = ckpt if ckpt.is_dir() else Path("/work/main/benchmarks/checkpoints") / MODELS[model]
    out = HERE / "runs" / "torch_pruning_peer" / f"{model}_ours_{ratio:g}x"
    cmd = ["cascadeprune", "compress", str(ckpt), "--task", "cwru-4class-crossload", "--ratio", f"{ratio:g}", "--seed",
           "42", "--data-dir", DATA, "--out", str(out), "--overwrite", "--set", f"stages={OURS_STAGES}", "--json"]
    t0 = time.perf_counter()
    code = cli(cmd[1:])
    rec = {"benchmark": "torch_pruning", "model": model, "method": "cascadeprune-l1-ffn-uniform", "ratio_target": ratio,
           "seed": 42, "test_snr_db": None, "recovery_steps": 0, "command": shlex.join(cmd)}
    if code != 0:
        return rec | {"status": "failed", "error": f"compress exited {code}"}
    rep = json.loads((out / "report.json").read_text())
    return rec | {"status": "ok", "ratio_achieved": round(rep["ratio_achieved"], 4),
                  "test_accuracy": round(rep["accuracy"], 5), "dense_test_accuracy": round(rep["dense"]["accuracy"], 5),
                  "wall_s": round(time.perf_counter() - t0, 1)}


def _blocks(clf):
    """The transformer blocks' parameters, found through the family table (the pruned shapes no longer resolve)."""
    from cascadeprune.arch.resolve import base_model_of
    from cascadeprune.arch.table import family_for

    base = base_model_of(clf)
    return base.get_submodule(family_for(base.config.model_type).layers).parameters()


def main() -> None:
    import torch

    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--ratios", nargs="+", type=float, default=[1.3, 2.5])
    ap.add_argument("--units", choices=["ffn"], default="ffn")
    ap.add_argument("--ours", action="store_true", help="run the same cut in this project's engine instead")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for model in args.models:
        for ratio in args.ratios:
            rec = (ours(model, ratio) if args.ours else run(model, ratio, args.units)) | provenance(sys.argv[1:])
            with open(RESULTS, "a") as f:
                f.write(json.dumps(rec) + "\n")
            print({k: rec.get(k) for k in ("model", "ratio_target", "status", "ratio_achieved", "test_accuracy",
                                           "error")}, flush=True)


if __name__ == "__main__":
    main()
