"""The Structural Independence Assumption, measured (`cascadeprune sia`), on GQA+SwiGLU against MHA+GELU.

Models:
- ``smollm2-135m`` (pretrained, GQA D = 3 + SwiGLU) as a causal LM on the shipped corpus (``lm@seq=64``);
- a controlled pair trained from scratch on the paper's task (CWRU 4-class cross-load), same size and recipe:
  ``gpt2-10m`` (MHA + GELU) and ``llama-10m`` (GQA D = 3 + SwiGLU); trained here by ``cascadeprune train`` when
  their directory is missing (300 steps, seed 42).

Each run is one (model, granularity) with several criteria measured on the same calibration batches and the
same unit sample (the single and pair removals are computed once and shared). Every record equals what
``cascadeprune sia`` prints for that criterion (its ``command`` field); the driver only shares the work.

    python -m benchmarks.sia --list
    python -m benchmarks.sia --only smollm2-heads
    python -m benchmarks.sia --table

Appends one JSON record per (run, criterion) to benchmarks/results/sia.jsonl: the whole `sia --json` result for
that granularity plus model, task, ratio, seed, command, date, commit, machine, wall.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

from benchmarks._common import RESULTS_DIR, ROOT, append_records, load_records, newest, provenance, run_cli
from benchmarks.sia_collapse import CLASSIFIERS, HEAD_SHARE, classifier_dir  # one definition of the 2x2 and cuts

RESULTS = RESULTS_DIR / "sia.jsonl"
LM_TASK = "lm@seq=64"
CWRU = "cwru-4class-crossload"
TRAIN = ["--task", CWRU, "--data-dir", "../shared/data", "--max-steps", "300", "--seed", "42"]

# name: model, task, granularity, ratio, units, pairs, random sets, [(criterion, mode)]. SmolLM2 is sized for two
# shared cores (one evaluation = a pass of 16 x 64 tokens, seconds each; a few hundred per run at most).
RUNS = {
    "smollm2-heads": ("smollm2-135m", LM_TASK, "heads", 1.05, 45, 30, 2,
                      [("wanda_sp", "grouped"), ("activation", "grouped"), ("l1", "grouped")]),
    "smollm2-channels": ("smollm2-135m", LM_TASK, "channels", 1.11, 32, 24, 2,
                         [("wanda_sp", "grouped"), ("l1", "grouped")]),
    "smollm2-layers": ("smollm2-135m", LM_TASK, "layers", 1.1, 30, 20, 2, [("lcr", "grouped")]),
}
# The classifiers reach ~100 % on clean windows (calibration loss ~3e-4: every removal changes it by ~1e-6), so
# their calibration windows carry white noise at 10 dB SNR (NOISY): loss 1.8 / 1.5, accuracy 62 / 69 % there (at 0 dB
# the loss is 7, confidently wrong, and removing layers lowers it).
for _b in ("gpt2-10m", "llama-10m"):
    _m = f"benchmarks/runs/sia/{_b}-cwru"
    RUNS[f"{_b}-heads"] = (_m, CWRU, "heads", 1.15, 36, 120, 3, [("wanda_sp", "grouped"), ("l1", "grouped"),
                                                                  ("activation", "grouped"), ("l1", "naive")])
    RUNS[f"{_b}-channels"] = (_m, CWRU, "channels", 1.2, 96, 96, 3, [("wanda_sp", "grouped"), ("l1", "grouped"),
                                                                       ("activation", "grouped")])
    RUNS[f"{_b}-layers"] = (_m, CWRU, "layers", 1.5, 6, 15, 3, [("lcr", "grouped"), ("block_influence", "grouped")])
# The 2x2 (and MiniLM) as benchmarks/sia_collapse.py trains them (raw time-domain front end, seed 42), measured at
# the cuts its 2x runs make: heads alone at the heads stage's ratio (half of the attention parameters), channels
# alone at the channels stage's (half of the FFN parameters), so that the verdict is about the sets that collapse
# or not there. Calibration as above (10 dB windows).

RAW_SEED = 42
# The classifiers of the other two seeds are independently trained models: each gets the default check
# (wanda_sp, grouped: the one the verdict uses) at the same cuts, as runs "<model>-raw-<granularity>-s<seed>", so
# that a verdict is seen on three models per architecture rather than one.
OTHER_SEEDS = (123, 456)
CHECK = ("wanda_sp", "grouped")
for _b, _h in ((b, HEAD_SHARE[b]) for b in CLASSIFIERS):
    _m = str(classifier_dir(_b, RAW_SEED).relative_to(ROOT))
    _rh, _rc = round(1 / (1 - _h / 2), 3), round(1 / (1 - (1 - _h) / 2), 3)
    RUNS[f"{_b}-raw-heads"] = (_m, CWRU, "heads", _rh, 36, 120, 3,
                               [CHECK, ("l1", "naive"), ("l1", "grouped"), ("taylor", "naive"), ("taylor", "grouped")])
    RUNS[f"{_b}-raw-channels"] = (_m, CWRU, "channels", _rc, 96, 96, 3,
                                  [CHECK, ("l1", "naive")])  # channels: ~40 s per extra criterion
    for _s in OTHER_SEEDS:
        _ms = str(classifier_dir(_b, _s).relative_to(ROOT))
        RUNS[f"{_b}-raw-heads-s{_s}"] = (_ms, CWRU, "heads", _rh, 36, 120, 3, [CHECK])
        RUNS[f"{_b}-raw-channels-s{_s}"] = (_ms, CWRU, "channels", _rc, 96, 96, 3, [CHECK])
WINDOWS, BATCH, SEED = 16, 8, 42
NOISY = f"{CWRU}@snr=10:1"


def mix_of(task: str) -> str | None:
    return NOISY if task == CWRU else None


def cli_command(model, task, g, ratio, units, pairs, random_sets, criterion, mode) -> list[str]:
    cmd = ["cascadeprune", "sia", model, "--task", task, "--granularity", g, "--criterion", criterion, "--ratio",
           f"{ratio:g}", "--units", str(units), "--pairs", str(pairs), "--random-sets", str(random_sets),
           "--windows", str(WINDOWS), "--batch-size", str(BATCH), "--seed", str(SEED)]
    if mode != "grouped":
        cmd += ["--mode", mode]
    if task == CWRU:
        cmd += ["--calibration", NOISY, "--data-dir", "../shared/data"]
    return cmd + ["--json"]


def ensure_classifier(model: str) -> None:
    if "sia-collapse" in model:  # trained by sia_collapse.py's own command (one recipe for both benchmarks)
        from benchmarks import sia_collapse

        name, seed = next((b, s) for b in sia_collapse.CLASSIFIERS for s in (RAW_SEED, *OTHER_SEEDS)
                          if str(sia_collapse.classifier_dir(b, s).relative_to(ROOT)) == model)
        sia_collapse.ensure_classifier(name, seed, "cpu")
        return
    if model.startswith("benchmarks/") and not (ROOT / model).exists():
        cmd = ["cascadeprune", "train", "--backbone", Path(model).name.removesuffix("-cwru"), "--out", model, *TRAIN]
        print("training", shlex.join(["cascadeprune.cli", *cmd[1:]]), flush=True)
        child = run_cli(cmd)
        if child.returncode != 0:
            raise SystemExit(f"training {model} failed ({child.returncode}):\n{child.stderr[-2000:]}")


def run(name: str, results: Path) -> None:
    import torch

    from cascadeprune import load_model
    from cascadeprune.sia.measure import measure
    from cascadeprune.tasks import get_task

    model, task_spec, g, ratio, units, pairs, random_sets, criteria = RUNS[name]
    ensure_classifier(model)
    os.chdir(ROOT)  # the model paths and ../shared/data are relative to the repository root
    torch.manual_seed(SEED)
    m = load_model(model)
    task = get_task(task_spec, m, source=model, data_dir="../shared/data" if task_spec == CWRU else None)
    from cascadeprune.methods.config import parse_mix

    mix = parse_mix(mix_of(task_spec)) if mix_of(task_spec) else None
    batches = task.calibration_batches(mix, WINDOWS, BATCH, SEED)
    cache: dict = {}
    for criterion, mode in criteria:
        t0 = time.perf_counter()
        r = measure(m, task, g, criterion=criterion, mode=mode, ratio=ratio, units=units, pairs=pairs,
                    random_sets=random_sets, seed=SEED, batches=batches, cache=cache, progress=True)
        rec = {"benchmark": "sia", "run": name, "model": model, "task": task_spec, "granularity": g,
               "criterion": criterion, "mode": mode, "ratio": ratio, "seed": SEED, "windows": WINDOWS,
               "calibration": mix_of(task_spec),
               "batch_size": BATCH, "result": r, "wall_s": round(time.perf_counter() - t0, 1),
               "command": shlex.join(cli_command(model, task_spec, g, ratio, units, pairs, random_sets, criterion, mode)),
               "driver": f"python -m benchmarks.sia --only {name}",
               **provenance("sia", sys.argv[1:], command_key="benchmark_command"), "threads": torch.get_num_threads()}
        print(summary_line(append_records(results, [rec])[0]), flush=True)


def _A(x) -> str:
    if x is None:
        return "–"
    return x if isinstance(x, str) else f"{x:.2f}"


def summary_line(rec: dict) -> str:
    r = rec["result"]
    c, rk = r["sets"]["criterion"], r["rank"]
    q = lambda x: "" if x.get("determined", True) else "?"  # noqa: E731  ? = Σδ within 2 SE of 0 (sampled)
    w, a = r["pairs"]["within"], r["pairs"]["across"]
    t = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
    return (f"| {rec['model'].split('/')[-1]} | {rec['granularity']} | {rec['criterion']} ({rec['mode']}) | "
            f"{rec['ratio']:g}x | {r['single']['measured']} / {r['units_total']} | "
            f"{t(w.get('median'))} ({w['n']}) | {t(a.get('median'))} ({a['n']}) | "
            + (f"{c['units']}: ΔL {c['delta_loss']:+.3f}, Σδ {c['sum_delta']:+.3f}, A {_A(c['A'])}{q(c)} | " if c else "– | ")
            + f"{', '.join(_A(x['A']) + q(x) for x in r['sets']['random']) or '–'} | {t(rk['tau_halves'])} | {t(rk.get('tau_rescore'))} | "
            f"{t(rk['tau_criterion_vs_delta'])} | **{r['verdict']}** ({r['static']['verdict']}) |")


HEAD = ("| model | granularity | criterion | ratio | measured / units | within: median norm. abs(I) (pairs) | "
        "across (pairs) | criterion set: units, ΔL, Σδ, A | random sets A | τ halves | τ re-scored | "
        "τ criterion vs δ | verdict (static) |")


def table(results: Path = RESULTS) -> str:
    # sia_collapse.py appends its own kind to this file; the newest record of each (run, criterion, mode)
    last = newest(load_records(results, "sia"), lambda r: (r["run"], r["criterion"], r["mode"]))
    lines = [HEAD, "|" + "---|" * (HEAD.count("|") - 1)]
    return "\n".join(lines + [summary_line(r) for r in last.values()])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="+", default=None, help="run names (see --list)")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--table", action="store_true")
    args = ap.parse_args()
    if args.table:
        print(table(args.results))
        return
    for name, spec in RUNS.items():
        if args.only is not None and name not in args.only:
            continue
        if args.list:
            model, task, g, ratio, units, pairs, random_sets, criteria = spec
            for c, mode in criteria:
                print(f"{name}: {shlex.join(cli_command(model, task, g, ratio, units, pairs, random_sets, c, mode))}")
        else:
            run(name, args.results)


if __name__ == "__main__":
    main()
