"""An outside peer: Torch-Pruning (Fang et al., "DepGraph: Towards Any Structural Pruning", CVPR 2023) through
its public API on the dense bearing classifiers, at the frontier's ratios, with and without this project's
recovery budget, beside this project's ``cascadeprune compress --method cascade`` on the same checkpoints;
where a run fails, the failure and the versions are the record.

Torch-Pruning is not a dependency of the project: install it apart from the project's environment, e.g.

    pip install --no-deps --target /tmp/tp-site torch-pruning==1.6.1
    PYTHONPATH=src:/tmp/tp-site python -m benchmarks.torch_pruning_peer --seeds 42 123 456      # Torch-Pruning
    PYTHONPATH=src python -m benchmarks.torch_pruning_peer --seeds 42 123 456 --ours                # this engine
    python -m benchmarks.torch_pruning_peer --table        # Markdown: method x ratio, mean ± sd over seeds
    python -m benchmarks.torch_pruning_peer --stats        # ours - Torch-Pruning per ratio, paired over seeds

What Torch-Pruning runs: ``tp.pruner.MetaPruner`` with ``tp.importance.MagnitudeImportance(p=1)`` (L1), one
shot, the same share in every layer (its ``global_pruning=False`` default). The front end, the head and every
projection whose outputs are the residual stream (attention output, FFN down) are ``ignored_layers``, so the
hidden size stays; DepGraph couples the rest. Units (``--units``):

- ``heads+ffn`` (default): whole attention heads and FFN channels, Torch-Pruning's documented BERT/ViT head
  pruning (``num_heads={q: n, k: n, v: n}`` per layer, ``prune_num_heads=True``, ``prune_head_dims=False``,
  ``head_pruning_ratio``; it removes ``ceil(head_pruning_ratio * n)`` heads per layer, the same heads from
  q, k, v and the output projection's inputs), then, as its BERT example does, each attention module's
  ``num_attention_heads`` / ``attention_head_size`` / ``all_head_size`` set from ``pruner.num_heads``.
  Heads come in whole steps (1/12 of a layer's attention), so the two knobs are set thus: the number of heads
  ``k`` per layer is the largest for which ``k`` heads plus the same share ``k / n`` of FFN channels stays at or
  below the target ratio, and the FFN ``pruning_ratio`` is then bisected (for ``k`` and for ``k + 1`` heads)
  until the block-parameter ratio is within 1 % of the target; of the two, the one whose FFN share is nearer
  its head share is kept (the same share of heads and channels as far as whole heads allow).
- ``ffn``: FFN channels only (attention projections ignored too), ``pruning_ratio`` bisected.

A target that no setting reaches within 1 % is recorded with status ``unreachable``; an exception or a model
that loses no block parameter is status ``failed`` with the error (never a faked number).

Recovery with an equal budget: the pruned model is evaluated right after the cut (method
``torch-pruning-l1-<units>``, 0 steps), then recovered with exactly the recovery a baseline gets from this
engine at the same ratio, seed and ``--recovery-scale`` (``summed_recovery`` of the cascade configuration that
``cascade.py``'s ``variant_overrides("cascade", recovery_scale=...)`` builds: the cascade's 60 + 60 + 180
LoRA steps times the scale in one recovery, same batch size, learning rate, rank and alpha, same recovery seed
rule) through the engine's own ``recover`` (method ``torch-pruning-l1-<units>+budget``). To let the engine's
LoRA find the projections, the removed heads and channels that Torch-Pruning reports in its pruning groups are
written into the model's config record (``surgery.apply._update_config``, what the engine's own surgery writes);
the record is checked by resolving the pruned model, and the pruned weights are compared with the engine's
``apply_plan`` of the same plan (``matches_engine_surgery``). Should LoRA fail on the pruned modules, the
same budget runs as full fine-tuning of every parameter (``recovery_method`` says which ran, and why).

``--ours``: ``cascadeprune compress --method cascade`` (``cascadeprune.cli.main`` in this process, as
frontier.py's ``run_one``) on the same checkpoint, ratio, seed and recovery scale (method ``cascade``), and
the same cascade without any recovery (``cascade-norecovery``), scored on the same test windows.

Appends to results/torch_pruning.jsonl (never rewrites it): model, method, units, ratio_target,
ratio_achieved, seed, test_accuracy (clean), dense_test_accuracy, recovery_steps, recovery_method, status,
error, versions, command, date, machine, commit.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import shlex
import sys
import time
import traceback
from pathlib import Path

from benchmarks._common import (CHECKPOINTS, DATA, HERE, RESULTS_DIR, ROOT, append_records, checkpoint_name,
                                cli_in_process, compress_command, load_records, mean_sd, md_head, newest, paired,
                                provenance)
from benchmarks.cascade import variant_config, variant_overrides
from benchmarks.frontier import RATIOS

RESULTS = RESULTS_DIR / "torch_pruning.jsonl"
PROTOCOL = "cwru-4class-crossload"
# model -> how its dense checkpoint was trained (benchmarks/dense.py): front end and speed jitter
MODELS = {"all-minilm-l6-v2": {"front_end": "spectrum", "speed_jitter": 0.0},
          "gpt2-deep": {"front_end": "raw", "speed_jitter": 0.03}}
SEEDS = (42, 123, 456)
UNITS = ("heads+ffn", "ffn")
TOL = 0.01  # the block ratio must be within 1 % of the target
MAX_FFN_FRACTION = 0.97  # Torch-Pruning's pruning_ratio is bisected below this
PAIRS = (("cascade", "torch-pruning-l1-heads+ffn+budget"), ("cascade-norecovery", "torch-pruning-l1-heads+ffn"))


# -- provenance ---------------------------------------------------------------------------------

def checkpoint(model: str, seed: int) -> Path:
    m = MODELS[model]
    return CHECKPOINTS / checkpoint_name(model, PROTOCOL, seed, m["speed_jitter"], m["front_end"])


def versions() -> dict:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    import torch
    import transformers

    out = {"torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version()}
    try:  # the wheel's version (torch_pruning.__version__ of the 1.6.1 wheel still says 1.6.0)
        import torch_pruning as tp

        out |= {"torch_pruning": version("torch-pruning"), "torch_pruning_module": tp.__version__}
    except (ImportError, PackageNotFoundError):
        out |= {"torch_pruning": None}
    return out


def equal_budget(ratio: float, seed: int, scale: float, speed_jitter: float):
    """The recovery this engine gives a baseline with ``baseline_recovery=budget``: the cascade's stage budgets
    (cascade.py's ``variant_overrides``, times ``scale``) summed into one recovery, the last stage's settings."""
    from cascadeprune.methods.cascade import summed_recovery

    return summed_recovery(variant_config("cascade", ratio, seed, speed_jitter=speed_jitter, recovery_scale=scale))


# -- Torch-Pruning ------------------------------------------------------------------------------

def _blocks(clf) -> int:
    """Parameters of the transformer blocks, found through the family table (a pruned model with no record does
    not resolve: its shapes no longer match the config)."""
    from cascadeprune.arch.resolve import base_model_of
    from cascadeprune.arch.table import family_for

    base = base_model_of(clf)
    return sum(p.numel() for p in base.get_submodule(family_for(base.config.model_type).layers).parameters())


def tp_prune(clf, heads: int, ffn_fraction: float, units: str):
    """A copy of ``clf`` cut by Torch-Pruning: ``heads`` whole heads (``heads+ffn``) and ``ffn_fraction`` of the
    FFN channels of every layer. Returns (model, removed, pruner settings); ``removed`` holds the original indices
    of the heads and channels removed per layer, as Torch-Pruning's pruning groups name them."""
    import torch
    import torch_pruning as tp

    from cascadeprune.arch.resolve import resolve

    m = copy.deepcopy(clf).eval()
    s = resolve(m)
    n, hd = s.dims.num_heads, s.dims.head_dim
    num_heads = {p: n for l in s.layers for p in (l.q, l.k, l.v)} if units == "heads+ffn" else {}
    roots = {id(l.up) for l in s.layers} | {id(p) for p in num_heads}
    ignored = [mod for mod in m.modules() if isinstance(mod, torch.nn.Linear) and id(mod) not in roots]
    ignored += [m.frontend, m.head]
    head_ratio = 0.0 if heads == 0 else (heads - 0.5) / n  # ceil(head_ratio * n) == heads
    kw = dict(num_heads=num_heads, prune_num_heads=True, prune_head_dims=False,
              head_pruning_ratio=head_ratio) if num_heads else {}
    pruner = tp.pruner.MetaPruner(m, torch.randn(2, m.frontend.cfg.window),
                                  importance=tp.importance.MagnitudeImportance(p=1), pruning_ratio=ffn_fraction,
                                  ignored_layers=ignored, **kw)
    layer_of = {id(l.up): ("channels", l.orig_index) for l in s.layers}
    layer_of |= {id(l.q): ("heads", l.orig_index) for l in s.layers}
    removed: dict = {"heads": {}, "channels": {}}
    for group in pruner.step(interactive=True):
        for dep, idxs in group:
            kind, layer = layer_of.get(id(dep.target.module), (None, None))
            if kind is None or not pruner.DG.is_out_channel_pruning_fn(dep.handler):
                continue
            idx = sorted(int(getattr(i, "idx", i)) for i in idxs)
            if kind == "heads":
                whole = sorted({i // hd for i in idx})
                if idx != [h * hd + j for h in whole for j in range(hd)]:
                    raise RuntimeError(f"layer {layer}: Torch-Pruning removed parts of heads, not whole heads")
                idx = whole
            removed[kind][layer] = sorted(set(removed[kind].get(layer, [])) | set(idx))
        group.prune()
    for l in s.layers:  # the head bookkeeping Torch-Pruning's BERT example does after pruning
        if num_heads:
            l.attention.num_attention_heads = pruner.num_heads[l.q]
            l.attention.attention_head_size = l.q.out_features // pruner.num_heads[l.q]
            l.attention.all_head_size = l.q.out_features
    return m, removed, {"head_pruning_ratio": round(head_ratio, 6), "pruning_ratio": round(ffn_fraction, 6)}


def search(clf, ratio: float, units: str, dense_blocks: int) -> dict:
    """The Torch-Pruning setting whose block ratio is nearest ``ratio`` (within 1 % where reachable)."""
    from cascadeprune.arch.resolve import resolve

    n = resolve(clf).dims.num_heads

    def at(k: int, p: float) -> float:
        small, _, _ = tp_prune(clf, k, p, units)
        return dense_blocks / _blocks(small)

    def bisect(k: int) -> dict:
        lo, hi, best = 0.0, MAX_FFN_FRACTION, None
        for _ in range(16):
            mid = (lo + hi) / 2
            got = at(k, mid)
            if best is None or abs(got / ratio - 1) < abs(best["ratio"] / ratio - 1):
                best = {"heads": k, "ffn_fraction": mid, "ratio": got}
            if abs(got / ratio - 1) <= TOL / 2:
                break
            lo, hi = (mid, hi) if got < ratio else (lo, mid)
        return best

    if units == "ffn":
        return bisect(0)
    k = 0  # the most heads for which k heads and the same share k / n of the channels stay at or below the target
    while k + 1 < n and at(k + 1, (k + 1) / n) <= ratio:
        k += 1
    cands = [bisect(j) for j in (k, k + 1) if j < n]
    hits = [c for c in cands if abs(c["ratio"] / ratio - 1) <= TOL]
    if hits:
        return min(hits, key=lambda c: abs(c["ffn_fraction"] - c["heads"] / n))
    return min(cands, key=lambda c: abs(c["ratio"] / ratio - 1))


def adopt(pruned, dense, removed: dict) -> bool:
    """Write what an outside tool removed into ``pruned``'s config record (as the engine's surgery does), so the
    architecture table resolves it again (which checks every shape against the record). Returns whether the
    weights equal the engine's own ``apply_plan`` of the same plan on ``dense``."""
    import torch

    from cascadeprune.arch.resolve import resolve
    from cascadeprune.plan import PruningPlan
    from cascadeprune.surgery.apply import _update_config, apply_plan

    plan = PruningPlan(frozenset(), {int(k): v for k, v in removed.get("heads", {}).items()},
                       {int(k): v for k, v in removed.get("channels", {}).items()})
    _update_config(pruned.config, resolve(dense), plan)
    resolve(pruned)  # raises if a shape disagrees with the record
    ref = apply_plan(dense, plan).state_dict()
    got = pruned.state_dict()
    return ref.keys() == got.keys() and all(ref[k].shape == got[k].shape and torch.equal(ref[k], got[k]) for k in ref)


_DATA: dict = {}


def task_for(clf):
    """The bearing task a compress run of ``clf`` builds (its windows), built once per process."""
    from cascadeprune.tasks.bearing.task import BearingTask

    if "task" not in _DATA:
        _DATA["task"] = BearingTask.for_model(PROTOCOL, clf, DATA)
    return _DATA["task"]


def peer_command(model: str, ratio: float, seed: int, units: str, scale: float) -> str:
    return shlex.join(["python", "benchmarks/torch_pruning_peer.py", "--models", model, "--ratios", f"{ratio:g}",
                       "--seeds", str(seed), "--units", units, "--recovery-scale", f"{scale:g}"])


def run(model: str, ratio: float, seed: int, units: str, scale: float) -> list[dict]:
    """Torch-Pruning's cut at ``ratio``: the record right after the cut and the record after the equal budget."""
    import torch

    from cascadeprune.recovery import recover
    from cascadeprune.storage import load_model
    from cascadeprune.tasks.bearing.train import evaluate

    method = f"torch-pruning-l1-{units}"
    base = {"benchmark": "torch_pruning", "model": model, "protocol": PROTOCOL, "units": units,
            "ratio_target": ratio, "seed": seed, "test_snr_db": None, "recovery_scale": scale, "status": "failed",
            "error": None, "versions": versions(), "command": peer_command(model, ratio, seed, units, scale)}
    cut = base | {"method": method, "recovery_steps": 0, "recovery_method": "none"}
    t0 = time.perf_counter()
    try:
        clf = load_model(checkpoint(model, seed))
        task = task_for(clf)
        dense_blocks = _blocks(clf)
        if (model, seed) not in _DATA:
            _DATA[(model, seed)] = round(evaluate(clf, task.ds, "test")["accuracy"], 5)
        cut["dense_test_accuracy"] = _DATA[(model, seed)]
        best = search(clf, ratio, units, dense_blocks)
        cut |= {"heads_removed_per_layer": best["heads"], "ffn_pruning_ratio": round(best["ffn_fraction"], 5),
                "ratio_achieved": round(best["ratio"], 4)}
        if best["ratio"] < 1.0001:  # nothing removed: the projections are of a type it does not prune
            from cascadeprune.arch.resolve import resolve

            kind = type(resolve(clf).layers[0].up).__name__
            return [cut | {"status": "failed", "error": f"removed no block parameter at any pruning_ratio up to "
                           f"{MAX_FFN_FRACTION}: the FFN projections are {kind} modules, which Torch-Pruning leaves "
                           "as unwrapped parameters"}]
        if abs(best["ratio"] / ratio - 1) > TOL:
            return [cut | {"status": "unreachable", "error": f"nearest setting ({best['heads']} heads, pruning_ratio "
                           f"{best['ffn_fraction']:.4f}) reaches {best['ratio']:.4f}x, not within 1 % of {ratio:g}x"}]
        small, removed, settings = tp_prune(clf, best["heads"], best["ffn_fraction"], units)
        cut |= {"tp_settings": settings, "block_params": _blocks(small),
                "heads_left": _units_left(small, clf)[0], "ffn_channels_left": _units_left(small, clf)[1]}
        with torch.no_grad():
            m = evaluate(small, task.ds, "test")
        cut |= {"status": "ok", "test_accuracy": round(m["accuracy"], 5), "macro_f1": round(m["macro_f1"], 5),
                "wall_s": round(time.perf_counter() - t0, 1)}
    except Exception as e:  # the failure is the result
        return [cut | {"status": "failed", "error": f"{type(e).__name__}: {e}"[:500],
                       "traceback_tail": traceback.format_exc()[-800:]}]

    rec_cfg = equal_budget(ratio, seed, scale, MODELS[model]["speed_jitter"])
    budget = base | {"method": f"{method}+budget", "recovery": rec_cfg.model_dump(),
                     **{k: cut[k] for k in ("dense_test_accuracy", "heads_removed_per_layer", "ffn_pruning_ratio",
                                            "ratio_achieved", "tp_settings", "block_params", "heads_left",
                                            "ffn_channels_left")}}
    t1 = time.perf_counter()
    rec_seed = seed * 1000 + 1  # the engine's rule for a one-cut method's recovery (stage 0: seed * 1000, + 1)
    try:
        before = copy.deepcopy(small)
        try:
            budget["matches_engine_surgery"] = adopt(small, clf, removed)
            torch.manual_seed(seed * 1000)
            rep = recover(small, task, rec_cfg, seed=rec_seed, progress=False, desc="torch-pruning: recover")
            how = (f"{rec_cfg.method} (the engine's recover(): rank {rec_cfg.rank}, alpha {rec_cfg.alpha}, "
                   f"targets {rec_cfg.targets}, head and front end trained)")
        except Exception as e:  # LoRA cannot run on these modules: the same budget as full fine-tuning
            why = f"{type(e).__name__}: {e}"[:300]
            small = before
            full = rec_cfg.model_copy(update={"method": "full"})
            torch.manual_seed(seed * 1000)
            rep = recover(small, task, full, seed=rec_seed, progress=False, desc="torch-pruning: recover (full)")
            how = f"full fine-tuning of all parameters (the engine's recover(), method full); LoRA failed: {why}"
        with torch.no_grad():
            m = evaluate(small, task.ds, "test")
        budget |= {"status": "ok", "test_accuracy": round(m["accuracy"], 5), "macro_f1": round(m["macro_f1"], 5),
                   "recovery_steps": rep["steps"],
                   "recovery_method": how, "recovery_wall_s": round(rep["wall_s"], 1),
                   "wall_s": round(time.perf_counter() - t1, 1)}
    except Exception as e:
        budget |= {"status": "failed", "error": f"{type(e).__name__}: {e}"[:500], "recovery_steps": 0,
                   "recovery_method": None, "traceback_tail": traceback.format_exc()[-800:]}
    return [cut, budget]


def _units_left(small, dense) -> tuple[int, int]:
    """Heads (query rows / head_dim) and FFN channels (up projection rows) left in every layer together."""
    from cascadeprune.arch.resolve import base_model_of, dense_dims
    from cascadeprune.arch.table import family_for

    base = base_model_of(small)
    fam = family_for(base.config.model_type)
    layers = base.get_submodule(fam.layers)
    q = sum(l.get_submodule(fam.q).weight.shape[0] for l in layers) if fam.q else 0
    return q // dense_dims(dense).head_dim, sum(l.get_submodule(fam.up).weight.shape[0] for l in layers)


# -- this engine --------------------------------------------------------------------------------

def ours_dir(model: str, seed: int, variant: str, ratio: float, scale: float) -> Path:
    return HERE / "runs" / "torch_pruning_peer" / f"{checkpoint(model, seed).name}_{variant}_{ratio:g}x_rec{scale:g}"


def ours_command(model: str, ratio: float, seed: int, scale: float, variant: str) -> list[str]:
    """The ``cascadeprune compress`` that is the run (frontier.py's ``command`` for this model's checkpoint)."""
    method, sets = variant_overrides(variant, speed_jitter=MODELS[model]["speed_jitter"], recovery_scale=scale)
    return compress_command(checkpoint(model, seed).relative_to(ROOT), PROTOCOL, ratio, seed,
                            ours_dir(model, seed, variant, ratio, scale).relative_to(ROOT), method,
                            ["--overwrite", "--data-dir", DATA], sets)


def ours(model: str, ratio: float, seed: int, scale: float, variant: str) -> dict:
    """``cascadeprune compress --method cascade`` (``variant`` cascade or cascade-norecovery) in this process; its
    report's test metrics are the task's ``evaluate`` on the same test windows the peer is scored on."""
    cmd = ours_command(model, ratio, seed, scale, variant)
    rec = {"benchmark": "torch_pruning", "model": model, "protocol": PROTOCOL, "method": variant, "units":
           "layers+heads+channels", "ratio_target": ratio, "seed": seed, "test_snr_db": None, "recovery_scale": scale,
           "status": "failed", "error": None, "versions": versions(), "command": shlex.join(cmd)}
    t0 = time.perf_counter()
    code = cli_in_process(cmd)
    if code != 0:
        return rec | {"error": f"compress exited {code}", "recovery_steps": 0, "recovery_method": None}
    out = ours_dir(model, seed, variant, ratio, scale)
    rep = json.loads((out / "report.json").read_text())
    steps = sum(st["recovery_steps"] for st in rep["stages"])
    rec_cfg = json.loads(cmd[-1].removeprefix("stages="))[-1]["recovery"]
    # the report's test metrics: the task's evaluate() on the same test windows the peer is scored on
    return rec | {"status": "ok", "ratio_achieved": round(rep["ratio_achieved"], 4), "block_params": rep["block_params"],
                  "test_accuracy": round(rep["accuracy"], 5), "macro_f1": round(rep["test"]["macro_f1"], 5),
                  "dense_test_accuracy": round(rep["dense"]["accuracy"], 5), "recovery_steps": steps,
                  "recovery_method": "none" if variant == "cascade-norecovery" else
                  f"{rec_cfg['method']} after each stage (rank 4, alpha 16, attention)",
                  "stages": [{k: st[k] for k in ("granularity", "ratio", "accuracy_pruned", "accuracy_recovered",
                                                 "recovery_steps")} for st in rep["stages"]],
                  "wall_s": round(time.perf_counter() - t0, 1)}


# -- reading the records ------------------------------------------------------------------------

def current(recs: list[dict]) -> list[dict]:
    """The records of this version of the script (they name their recovery); the earlier ones (FFN only, seed 42,
    no recovery, on an earlier dense checkpoint) have no ``recovery_method``."""
    return [r for r in recs if "recovery_method" in r]


def latest(recs: list[dict]) -> dict:
    """(model, method, ratio, seed, recovery scale) -> the last record of that run."""
    return newest(recs, lambda r: (r["model"], r["method"], r["ratio_target"], r["seed"], r.get("recovery_scale")))


def _pct(xs) -> str:
    return mean_sd(xs, 100, float_sum=True)


ORDER = ("cascade", "torch-pruning-l1-heads+ffn+budget", "cascade-norecovery", "torch-pruning-l1-heads+ffn")


def table(recs: list[dict]) -> str:
    """Per model: method x ratio, clean test accuracy (%) mean ± sd over seeds, the seeds counted; failed runs say
    so; the achieved ratios' range under each column. The earlier records follow in a table of their own."""
    now = current(recs)
    earlier = [r for r in recs if "recovery_method" not in r]
    out = _table(now)
    if earlier:
        out += ("\n\n*Earlier records* (the previous version of this script: FFN channels only, seed 42, no recovery; "
                "on a dense checkpoint since retrained, so not comparable cell by cell with the table above):\n"
                + _table(earlier))
    return out


def _table(recs: list[dict]) -> str:
    cells = latest(recs)
    lines = []
    for model in sorted({k[0] for k in cells}):
        mine = {k: r for k, r in cells.items() if k[0] == model}
        ratios = sorted({k[2] for k in mine})
        dense = {r["seed"]: r["dense_test_accuracy"] for r in mine.values() if r.get("dense_test_accuracy") is not None}
        dense_txt = (f"; dense {_pct(dense.values())} over seeds {', '.join(map(str, sorted(dense)))}"
                     if dense else "")
        lines += [f"\n**{model}** on {PROTOCOL}, clean test accuracy % (mean ± sd over seeds; n = seeds{dense_txt})\n",
                  "| method | recovery | recovery steps | " + " | ".join(f"{r:g}×" for r in ratios) + " |",
                  "|---|---|---|" + "---|" * len(ratios)]
        rows = sorted({(k[1], k[4]) for k in mine}, key=lambda x: (ORDER.index(x[0]) if x[0] in ORDER else 99, x[0],
                                                                    x[1] or 0))
        for method, scale in rows:
            runs = {k: r for k, r in mine.items() if k[1] == method and k[4] == scale}
            steps = sorted({r.get("recovery_steps") for r in runs.values() if r.get("status", "ok") == "ok"} - {None})
            how = {(r.get("recovery_method") or "").split(" ")[0] for r in runs.values()} - {""}
            row = [method, "/".join(sorted(how)) or ("none" if steps == [0] else "–"),
                   "/".join(str(s) for s in steps) or "–"]
            for ratio in ratios:
                got = [r for k, r in runs.items() if k[2] == ratio]
                ok = [r["test_accuracy"] for r in got if r.get("status", "ok") == "ok"]
                bad = [r for r in got if r.get("status", "ok") != "ok"]
                cell = f"{_pct(ok)} (n={len(ok)})" if ok else ""
                if bad:
                    cell += (" " if cell else "") + f"{bad[0]['status']} ({len(bad)})"
                row.append(cell or "–")
            lines.append("| " + " | ".join(row) + " |")
        achieved = {}
        for k, r in mine.items():
            if r.get("ratio_achieved") is not None and r.get("status", "ok") == "ok":
                achieved.setdefault(k[2], []).append(r["ratio_achieved"])
        lines.append("| ratio achieved (all runs) | | | " + " | ".join(
            f"{min(achieved[x]):.3f}–{max(achieved[x]):.3f}" if x in achieved else "–" for x in ratios) + " |")
        setting = {}
        for k, r in mine.items():
            if r.get("heads_removed_per_layer") is not None and r.get("units") == "heads+ffn":
                setting.setdefault(k[2], set()).add(f"{r['heads_removed_per_layer']} / {r['ffn_pruning_ratio']:.3f}")
        if setting:
            lines.append("| Torch-Pruning: heads removed per layer / FFN `pruning_ratio` | | | " + " | ".join(
                ", ".join(sorted(setting[x])) if x in setting else "–" for x in ratios) + " |")
        checked = [r.get("matches_engine_surgery") for r in mine.values() if "matches_engine_surgery" in r]
        if checked:
            lines.append(f"\nTorch-Pruning's cut equal to the engine's `apply_plan` of the same units "
                         f"(`matches_engine_surgery`): {sum(map(bool, checked))} of {len(checked)} runs.")
        how = sorted({r["recovery_method"] for r in mine.values() if (r.get("recovery_method") or "none") != "none"})
        if how:
            lines.append("Recovery: " + "; ".join(f"`{h}`" for h in how) + ".")
    return "\n".join(lines)


def stats(recs: list[dict], pairs=PAIRS) -> str:
    """Ours minus Torch-Pruning per ratio, paired over seeds (the seed fixes the dense checkpoint, the
    calibration draw and the recovery seed): ``scipy.stats.ttest_rel``, two-sided."""
    from scipy import stats as sst

    cells = latest(current(recs))
    lines = md_head(["model", "ours", "Torch-Pruning", "ratio", "seeds", "ours", "Torch-Pruning", "ours − TP (pp)",
                     "t", "p (two-sided)"])
    for model in sorted({k[0] for k in cells}):
        for a, b in pairs:
            for ratio in sorted({k[2] for k in cells if k[0] == model}):
                get = lambda m: {k[3]: r["test_accuracy"] for k, r in cells.items()  # noqa: E731
                                 if k[0] == model and k[1] == m and k[2] == ratio and r.get("status", "ok") == "ok"}
                seeds, xa, ya = paired(get(a), get(b))
                if not seeds:
                    continue
                diff = 100 * sum(p - q for p, q in zip(xa, ya)) / len(seeds)
                if len(seeds) >= 2:
                    t = sst.ttest_rel(xa, ya)
                    ts, ps = (f"{t.statistic:.2f}", f"{t.pvalue:.3g}") if not math.isnan(t.pvalue) else ("–", "–")
                else:
                    ts, ps = "–", "– (1 seed)"
                lines.append(f"| {model} | {a} | {b} | {ratio:g}× | {', '.join(map(str, seeds))} | "
                             f"{_pct(xa)} | {_pct(ya)} | {diff:+.2f} | {ts} | {ps} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["all-minilm-l6-v2"], choices=list(MODELS))
    ap.add_argument("--ratios", nargs="+", type=float, default=list(RATIOS))
    ap.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    ap.add_argument("--units", choices=UNITS, default="heads+ffn")
    ap.add_argument("--recovery-scale", type=float, default=0.5,
                    help="the budget: the cascade's 60+60+180 recovery steps times this (frontier.py's records: 0.5)")
    ap.add_argument("--ours", action="store_true",
                    help="run this engine's cascade (with the budget, and without recovery) instead of Torch-Pruning")
    ap.add_argument("--variants", nargs="+", choices=["cascade", "cascade-norecovery"],
                    default=["cascade", "cascade-norecovery"], help="with --ours: which of this engine's runs")
    ap.add_argument("--results", type=Path, default=RESULTS, help="the JSONL file read and appended to")
    ap.add_argument("--table", action="store_true", help="print the Markdown table of results/torch_pruning.jsonl")
    ap.add_argument("--stats", action="store_true", help="print ours - Torch-Pruning per ratio (paired t-test)")
    args = ap.parse_args()
    if args.table or args.stats:
        recs = load_records(args.results)
        print(table(recs) if args.table else "")
        print(stats(recs) if args.stats else "")
        return
    from benchmarks._common import set_threads

    set_threads()
    for seed in args.seeds:
        for model in args.models:
            for ratio in args.ratios:
                recs = ([ours(model, ratio, seed, args.recovery_scale, v) for v in args.variants]
                        if args.ours else run(model, ratio, seed, args.units, args.recovery_scale))
                prov = provenance("torch_pruning_peer", sys.argv[1:], command_key="benchmark_command")
                for rec in append_records(args.results, [rec | prov for rec in recs]):
                    print({k: rec.get(k) for k in ("model", "method", "ratio_target", "seed", "status",
                                                   "ratio_achieved", "test_accuracy", "recovery_steps", "error")},
                          flush=True)


if __name__ == "__main__":
    main()
