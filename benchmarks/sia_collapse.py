"""The collapse, reproduced and removed: naive against group-aware criteria at ~2x, and what keeps a model
prunable where the criteria alone fail (issue 19, item 3).

Models: the controlled 2x2 trained from scratch on the paper's task with the raw time-domain front end
(``gpt2-10m`` MHA+GELU, ``gqa-gelu-10m``, ``mha-swiglu-10m``, ``llama-10m`` GQA+SwiGLU; one classifier per
seed, each trained by the same ``cascadeprune train`` command when its folder is missing), the pretrained
``all-minilm-l6-v2`` (MHA+GELU) and ``smollm2-135m-cwru`` (pretrained GQA+SwiGLU, LoRA-trained as dense.py trains
it: 200 steps, ~2.3 s per step on 2 cores; a compress run ~4 min) on the same task, and
``smollm2-135m`` as a causal LM on the shipped corpus.

Every run IS ``cascadeprune compress`` in a fresh process (as benchmarks/lm.py); the record's ``command``
reproduces it. The schedule is given as ``--set stages=[...]`` (JSON), as benchmarks/cascade.py does:

- ``remedy: none``: heads then channels (half of each: a stage's share of the cut is its granularity's
  share of the block parameters, :data:`HEAD_SHARE`), one step each, with each criterion:
  ``l1`` and ``taylor`` once ``naive`` (each query head / each projection's channel scored alone) and once
  ``grouped`` (whole KV groups or equal heads per group; gate, up and down scored together per channel);
  ``wanda_sp`` has no naive mode (the registry refuses one that would score exactly as grouped), so it
  appears once, as grouped;
- remedies, with ``wanda_sp`` (grouped, the engine's default) and ``l1`` (naive, the paper's collapsing
  criterion): ``channels-first`` (channels then heads), ``iterative`` (each stage in 4 re-scored steps),
  ``uniform`` (channels taken equally from every layer: ``allocation: uniform``) and ``channels-only``
  (the whole cut from FFN channels in 4 re-scored steps, recipes/lm-iterative-channels.yaml's schedule;
  its granularity is ``channels``); ``distill`` (heads then channels as without a remedy, recovered by LoRA with a
  KL term to the dense model: recovery method ``distill``), with grouped ``taylor`` and naive ``l1``;
  ``channels-only`` also with grouped ``taylor``; ``auto`` (``--method auto``, docs/auto.md: the engine picks
  granularities, criteria, allocation and recovery recipe on validation) with the same summed LoRA budget, with
  recovery only (its criterion and mode read ``auto``).

Each runs twice: without recovery (``recovery.method: none``) and with the same LoRA budget for every run
of a model (classifiers 60 + 120 steps of 32 windows; SmolLM2 8 + 16 steps of 8 windows, lm-cpu.yaml's;
``--recovery-scale`` multiplies both). A schedule with one stage gets the summed budget.

    python -m benchmarks.sia_collapse --list                       # the runs and their commands
    python -m benchmarks.sia_collapse --models llama-10m --seeds 42 --recovery none
    python -m benchmarks.sia_collapse --table                      # Markdown table of the records
    python -m benchmarks.sia_collapse --device cuda                # recovery (and training) on a GPU

Appends one record per run to benchmarks/results/sia.jsonl with ``benchmark: "sia-collapse"``: model,
task, granularity, static_verdict, criterion, mode, remedy, ratio_target, ratio_achieved, seed,
recovery_steps, and for classification accuracy / dense_accuracy / drop_pp (percentage points), for the
LM perplexity_mean / dense_perplexity_mean / ppl_ratio; ``*_before_recovery`` is the last stage's value
right after its cut; per-stage values, command, train_command, date, commit, machine.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

from benchmarks._common import (DATA, HERE, RESULTS_DIR, ROOT, append_records, compress_command, geo_mean_sd,
                                load_records, mean_sd, newest, provenance, run_cli)
from benchmarks.auto_recipe import recovery_keys

RESULTS = RESULTS_DIR / "sia.jsonl"
RUNS = HERE / "runs" / "sia-collapse"
CWRU = "cwru-4class-crossload"
LM_TASK, LM_MIX, LM_RECIPE = "lm@seq=64,eval=16,val=4", "prose:1,code:1,technical:1", "recipes/lm-cpu.yaml"
CLASSIFIERS = ("gpt2-10m", "gqa-gelu-10m", "mha-swiglu-10m", "llama-10m", "all-minilm-l6-v2", "smollm2-135m-cwru")
MODELS = CLASSIFIERS + ("smollm2-135m",)
# a model name that is not its backbone's: SmolLM2 is also a bearing classifier (the pretrained GQA + SwiGLU model
# on the task where the 2x2 was measured), beside "smollm2-135m", the causal LM
BACKBONE = {"smollm2-135m-cwru": "smollm2-135m"}
# the static check per model (what `cascadeprune inspect` says; tests/test_backbones.py checks the four)
STATIC = {"gpt2-10m": "holds", "all-minilm-l6-v2": "holds", "gqa-gelu-10m": "violated (heads: D = 3)",
          "mha-swiglu-10m": "violated (channels: gated FFN)", "llama-10m": "violated (D = 3, gated FFN)",
          "smollm2-135m": "violated (D = 3, gated FFN)", "smollm2-135m-cwru": "violated (D = 3, gated FFN)"}
# The dense classifiers: benchmarks/dense.py's raw-patch recipe (400 steps, lr 5e-4, batch 32, speed jitter 0.03)
# through the CLI, identical for the four backbones; the pretrained MiniLM gets dense.py's own learning rate for it
# (2e-4: at 5e-4 fine-tuning a pretrained encoder is the wrong recipe, and dense.py's MiniLM classifiers use 2e-4).
TRAIN = ["--task", CWRU, "--features", "raw", "--no-global-token", "--patch", "32", "--window", "1024", "--stride",
         "512", "--max-steps", "400", "--lr", "5e-4", "--batch-size", "32", "--speed-jitter", "0.03"]
LR = {"all-minilm-l6-v2": "2e-4"}
# SmolLM2 as a classifier: dense.py's recipe for it (LoRA r4/a16 on attention, the front end and head in full;
# 200 steps at lr 1e-3): 135 M parameters trained in full on 2 cores is not a CPU recipe
TRAIN_OF = {"smollm2-135m-cwru": [x if x not in ("400", "5e-4") else {"400": "200", "5e-4": "1e-3"}[x]
                                  for x in TRAIN] + ["--lora"]}
RATIO = 2.0
# "heads+channels at 2x" = half of the attention and half of the FFN parameters: each stage's share of the cut is
# its granularity's share of the removable block parameters (per layer: q/k/v/o with biases vs the FFN's
# projections; norms stay). gpt2-10m 591,360 vs 1,181,568; gqa-gelu-10m 394,240 vs 1,353,824; mha-swiglu-10m
# 589,824 vs 1,161,216; llama-10m 393,216 vs 1,327,104; smollm2-135m 884,736 vs 2,654,208 (tests check the four).
HEAD_SHARE = {"gpt2-10m": 0.3335, "all-minilm-l6-v2": 0.3335, "gqa-gelu-10m": 0.2255, "mha-swiglu-10m": 0.3368, "llama-10m": 0.2286,
              "smollm2-135m": 0.25, "smollm2-135m-cwru": 0.25}
SEEDS = (42, 123, 456)
# LoRA steps per stage (heads, channels) and their batch / learning rate, per kind of model
BUDGET = {"classifier": {"heads": 60, "channels": 120, "batch_size": 32, "lr": 1e-3},
          "lm": {"heads": 8, "channels": 16, "batch_size": 8, "lr": 5e-4}}
BASE_CRITERIA = (("l1", "naive"), ("l1", "grouped"), ("taylor", "naive"), ("taylor", "grouped"),
                 ("wanda_sp", "grouped"))
REMEDY_CRITERIA = (("wanda_sp", "grouped"), ("l1", "naive"))
# distillation changes the recovery, not the cut: it is tried on the criterion that did best without a remedy
# (grouped Taylor, chosen on validation by sia_verdicts.py) and on the naive one
# channels only (the best schedule with wanda_sp at seed 42) is also tried with grouped Taylor, the best criterion
CRITERIA_OF = {"distill": (("taylor", "grouped"), ("l1", "naive")),
               "channels-only": REMEDY_CRITERIA + (("taylor", "grouped"),), "auto": (("auto", "auto"),)}
REMEDIES = ("none", "channels-first", "iterative", "uniform", "channels-only", "distill", "auto")
RECOVERED_ONLY = ("distill", "auto")  # without recovery, distill is the remedy-less run; auto always recovers


def kind(model: str) -> str:
    return "lm" if model == "smollm2-135m" else "classifier"


def backbone(model: str) -> str:
    return BACKBONE.get(model, model)


def classifier_dir(model: str, seed: int) -> Path:
    return RUNS / "classifiers" / f"{backbone(model)}-raw_seed{seed}"


def model_path(model: str, seed: int) -> str:
    return model if kind(model) == "lm" else str(classifier_dir(model, seed).relative_to(ROOT))


def train_command(model: str, seed: int, device: str = "cpu") -> list[str] | None:
    if kind(model) == "lm":
        return None
    train = TRAIN_OF.get(model) or (TRAIN if model not in LR else [x if x != "5e-4" else LR[model] for x in TRAIN])
    return (["cascadeprune", "train", "--backbone", backbone(model), "--out", model_path(model, seed), *train, "--seed",
             str(seed), "--data-dir", DATA] + (["--device", device] if device != "cpu" else []))


def grid(models=MODELS, seeds=SEEDS, remedies=REMEDIES, recoveries=("none", "lora")) -> list[dict]:
    """The runs, the headline comparison first (naive vs grouped without recovery), seed by seed."""
    out = []
    for seed in seeds:
        for recovery in recoveries:
            for remedy in remedies:
                if remedy in RECOVERED_ONLY and recovery == "none":
                    continue
                for model in models:
                    for criterion, mode in (BASE_CRITERIA if remedy == "none"
                                            else CRITERIA_OF.get(remedy, REMEDY_CRITERIA)):
                        out.append({"model": model, "criterion": criterion, "mode": mode, "remedy": remedy,
                                    "recovery": recovery, "seed": seed})
    return out


def granularity(r: dict) -> str:
    return {"channels-only": "channels", "auto": "auto"}.get(r["remedy"], "heads+channels")


def stages(r: dict, scale: float = 1.0, device: str = "cpu") -> list[dict]:
    """The run's stages as the recipe's ``stages`` list (what ``--set stages=...`` carries). For ``auto`` they only
    carry the recovery budget (auto recovers their summed steps, methods.cascade.summed_recovery); its search
    chooses the rest."""
    b = BUDGET[kind(r["model"])]
    order = {"channels-first": ["channels", "heads"], "channels-only": ["channels"]}.get(r["remedy"],
                                                                                       ["heads", "channels"])
    out = []
    for g in order:
        steps = round(scale * (b["heads"] + b["channels"] if len(order) == 1 else b[g]))
        rec = ({"method": "none"} if r["recovery"] == "none" else
               {"method": recovery_method(r), "steps": steps, "batch_size": b["batch_size"], "lr": b["lr"]})
        if device != "cpu" and r["recovery"] != "none":
            rec["device"] = device
        if r["remedy"] == "auto":
            out.append({"granularity": g, "recovery": rec})
            continue
        st = {"granularity": g, "criterion": r["criterion"], "mode": r["mode"], "recovery": rec}
        if len(order) > 1:
            share = HEAD_SHARE[r["model"]]
            st["share"] = share if g == "heads" else round(1 - share, 4)
        if r["remedy"] in ("iterative", "channels-only"):
            st["steps"] = 4
        if r["remedy"] == "uniform" and g == "channels":
            st["allocation"] = "uniform"
        out.append(st)
    return out


def recovery_method(r: dict) -> str:
    """``rec-lora`` runs recover with LoRA on the task's loss, or (remedy ``distill``) with LoRA on the task's loss
    plus a KL term to the dense model's outputs (recovery ``distill``: alpha 0.5, temperature 2, the engine's
    defaults), at the same steps, batch and learning rate."""
    return "none" if r["recovery"] == "none" else ("distill" if r["remedy"] == "distill" else "lora")


def name(r: dict) -> str:
    return f"{r['model']}_{r['remedy']}_{r['criterion']}-{r['mode']}_rec-{r['recovery']}_seed{r['seed']}"


def run_dir(r: dict) -> Path:
    return RUNS / name(r)


def command(r: dict, scale: float = 1.0, device: str = "cpu") -> list[str]:
    """The ``cascadeprune compress`` that is the run."""
    lm = kind(r["model"]) == "lm"
    options = ["--overwrite"] + (["--recipe", LM_RECIPE, "--calibration", LM_MIX] if lm else ["--data-dir", DATA])
    return compress_command(model_path(r["model"], r["seed"]), LM_TASK if lm else CWRU, RATIO, r["seed"],
                            run_dir(r).relative_to(ROOT), method="auto" if r["remedy"] == "auto" else None,
                            options=options,
                            sets=["stages=" + json.dumps(stages(r, scale, device), separators=(",", ":"))])


def ensure_classifier(model: str, seed: int, device: str) -> None:
    cmd = train_command(model, seed, device)
    if cmd is None or (ROOT / model_path(model, seed) / "classifier.json").exists():  # what `train` writes last
        return
    print(f"training: {shlex.join(cmd)}", flush=True)
    child = run_cli(cmd)
    if child.returncode != 0:
        raise SystemExit(f"training {model} seed {seed} failed ({child.returncode}):\n{child.stderr[-2000:]}")


def record(r: dict, rep: dict, cmd: list[str], wall: float, scale: float, device: str) -> dict:
    m = rep["metric"]  # accuracy (bearing) or perplexity (LM)
    last = rep["stages"][-1]
    rec = {"benchmark": "sia-collapse", "model": r["model"], "model_path": model_path(r["model"], r["seed"]),
           "task": LM_TASK if kind(r["model"]) == "lm" else CWRU, "granularity": granularity(r),
           "static_verdict": STATIC[r["model"]], "criterion": r["criterion"], "mode": r["mode"],
           "remedy": r["remedy"], "recovery": r["recovery"], "recovery_method": recovery_method(r),
           "ratio_target": RATIO,
           "ratio_achieved": round(rep["ratio_achieved"], 4), "seed": r["seed"],
           "recovery_steps": sum(s["recovery_steps"] for s in rep["stages"]), "recovery_scale": scale,
           "block_params": rep["block_params"], "dense_block_params": rep["dense"]["block_params"],
           "stages": [{k: s[k] for k in ("granularity", "block_params", "ratio", f"{m}_pruned", f"{m}_recovered",
                                         f"val_{m}_pruned", f"val_{m}_recovered", "recovery_steps", "wall_s")}
                      for s in rep["stages"]]}
    before = last[f"{m}_pruned"]  # None for auto: its cut is judged masked on validation, the log has it
    if m == "accuracy":
        rec |= {"accuracy": rep["accuracy"], "dense_accuracy": rep["dense"]["accuracy"],
                "drop_pp": round(100 * (rep["dense"]["accuracy"] - rep["accuracy"]), 3),
                "accuracy_before_recovery": before,
                "drop_pp_before_recovery": None if before is None else round(100 * (rep["dense"]["accuracy"] - before), 3),
                "macro_f1": rep.get("macro_f1")}
    else:
        rec |= {"perplexity_mean": rep["perplexity"], "dense_perplexity_mean": rep["dense"]["perplexity"],
                "ppl_ratio": rep["perplexity"] / rep["dense"]["perplexity"],
                "perplexity_before_recovery": before,
                "ppl_ratio_before_recovery": None if before is None else before / rep["dense"]["perplexity"],
                "perplexity": rep["test"]["perplexity_per_domain"],
                "dense_perplexity": rep["dense"]["test"]["perplexity_per_domain"], "calibration": LM_MIX}
    if r["remedy"] == "auto":  # the recipe auto ended up with, and its decision log's summary
        rec |= recovery_keys(rep)
    tc = train_command(r["model"], r["seed"], device)
    return rec | {"command": shlex.join(cmd), "train_command": shlex.join(tc) if tc else None,
                  "wall_s": round(wall, 1),
                  **provenance("sia_collapse", sys.argv[1:], device, command_key="benchmark_command")}


def run(r: dict, results: Path, scale: float, device: str) -> dict | None:
    ensure_classifier(r["model"], r["seed"], device)
    cmd = command(r, scale, device)
    t0 = time.perf_counter()
    child = run_cli(cmd)
    wall = time.perf_counter() - t0
    if child.returncode != 0:
        print(f"{name(r)}: FAILED ({child.returncode})\n{child.stderr[-2000:]}", flush=True)
        return None
    rec, = append_records(results, [record(r, json.loads((run_dir(r) / "report.json").read_text()), cmd, wall, scale,
                                           device)])
    what = (f"drop {rec['drop_pp']:+.2f} pp" if "drop_pp" in rec else f"perplexity x{rec['ppl_ratio']:.3g}")
    print(f"{name(r)}: {rec['ratio_achieved']:.2f}x, {what}, {rec['recovery_steps']} recovery steps, {wall:.0f} s",
          flush=True)
    return rec


# -- the table --------------------------------------------------------------------------------

def latest_runs(recs: list[dict]) -> dict:
    """(model, criterion, mode, remedy, recovery, seed) -> the newest sia-collapse record of that run."""
    return newest([r for r in recs if r.get("benchmark") == "sia-collapse"],
                  lambda r: (r["model"], r["criterion"], r["mode"], r["remedy"], r["recovery"], r["seed"]))


def _ratio(xs: list[float]) -> str:
    """Perplexity ratio: geometric mean ×/÷ geometric sd over seeds (ratios span orders of magnitude)."""
    g, gsd = geo_mean_sd(xs)
    return f"{g:.3g}x" + (f" ×/÷ {gsd:.2g}" if gsd is not None else "")


def table(recs: list[dict]) -> str:
    """Per model (its static verdict in the heading row), one row per (criterion, mode, remedy): the drop
    without recovery and with the LoRA budget, mean ± sd over seeds (the newest record of each run)."""
    cells: dict = {}
    for (model, crit, mode, remedy, recovery, seed), r in latest_runs(recs).items():
        cells.setdefault((model, crit, mode, remedy), {}).setdefault(recovery, []).append(r)
    head = ("| model (static SIA) | criterion | mode | remedy | granularity | achieved | no recovery: drop pp / "
            "ppl ratio | with LoRA: before its last recovery | after | recovery steps | seeds |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    order = {m: i for i, m in enumerate(MODELS)}
    rem = {x: i for i, x in enumerate(REMEDIES)}
    for key in sorted(cells, key=lambda k: (order.get(k[0], 99), k[0], rem.get(k[3], 99), k[1], k[2] != "naive")):
        model, crit, mode, remedy = key
        by = cells[key]
        any_r = next(iter(by.values()))[0]
        lm = "ppl_ratio" in any_r
        fmt, metric = (_ratio, "ppl_ratio") if lm else (mean_sd, "drop_pp")
        none, lora = by.get("none", []), by.get("lora", [])
        seeds = sorted({r["seed"] for rs in by.values() for r in rs})
        before = [r[metric + "_before_recovery"] for r in lora if r[metric + "_before_recovery"] is not None]
        lines.append(
            f"| {model} ({any_r['static_verdict']}) | {crit} | {mode} | {remedy} | {any_r['granularity']} | "
            f"{statistics.mean(r['ratio_achieved'] for rs in by.values() for r in rs):.2f}x | "
            f"{fmt([r[metric] for r in none]) if none else '–'} | "
            f"{fmt(before) if before else '–'} | "
            f"{fmt([r[metric] for r in lora]) if lora else '–'} | "
            f"{lora[0]['recovery_steps'] if lora else 0} | {', '.join(map(str, seeds))} |")
    return "\n".join(lines) + ("\n\nDrop in percentage points of test accuracy (dense − compressed; mean ± sd over "
                               "seeds); for the LM, test perplexity / dense (geometric mean ×/÷ geometric sd).")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    ap.add_argument("--remedies", nargs="+", default=list(REMEDIES), choices=list(REMEDIES))
    ap.add_argument("--recovery", nargs="+", default=["none", "lora"], choices=["none", "lora"])
    ap.add_argument("--only", nargs="+", default=None, help="run names (see --list)")
    ap.add_argument("--criteria", nargs="+", default=None, metavar="CRITERION-MODE",
                    help="only these criteria, e.g. l1-naive taylor-grouped (default: all of the remedy's)")
    ap.add_argument("--recovery-scale", type=float, default=1.0, help="multiply every LoRA budget by this")
    ap.add_argument("--device", default="cpu", help="where recovery and classifier training run (e.g. cuda)")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--list", action="store_true", help="print the runs and their commands")
    ap.add_argument("--table", action="store_true", help="print the Markdown table of --results")
    args = ap.parse_args(argv)
    if args.table:
        print(table(load_records(args.results)))
        return
    runs = [r for r in grid(args.models, args.seeds, args.remedies, args.recovery)
            if (args.only is None or name(r) in args.only)
            and (args.criteria is None or f"{r['criterion']}-{r['mode']}" in args.criteria)]
    if args.list:
        trained = set()
        for r in runs:
            tc = train_command(r["model"], r["seed"], args.device)
            if tc and (r["model"], r["seed"]) not in trained:
                trained.add((r["model"], r["seed"]))
                print(f"# dense classifier (trained when missing): {shlex.join(tc)}")
            print(f"{name(r)}: {shlex.join(command(r, args.recovery_scale, args.device))}")
        return
    for r in runs:
        run(r, args.results, args.recovery_scale, args.device)


if __name__ == "__main__":
    main()
