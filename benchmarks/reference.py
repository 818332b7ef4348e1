"""What a user would pick instead of a compressed LLM: reference models on every protocol.

For each (protocol, seed):

- ``wdcnn``: the WDCNN-style 1-D CNN, trained by the CLI itself in a fresh process
  (``cascadeprune train --backbone wdcnn --epochs 15``; the same windows, splits and training loop
  as the LLM classifiers), evaluated on the protocol's test split;
- ``fft-linear``: softmax regression on log-FFT magnitudes of the same windows (L-BFGS).

On ``cwru-to-mfpt-2class-5shot-adapt`` (few-shot adaptation: the training split is 10 MFPT windows)
``wdcnn`` is not trained afresh but adapted: ``cascadeprune train --init`` from its own
``cwru-to-mfpt-2class`` checkpoint of the same seed, for a fixed budget (ADAPT_STEPS at batch
ADAPT_BATCH, ``--keep last``; see the comment there), so run that protocol first. ``fft-linear`` has
no model to start from: it is fitted on the 10 windows alone (its record says so).

``--adapt MODEL ...`` adapts the LLM classifiers the same way (same budget, each from its dense
``cwru-to-mfpt-2class`` checkpoint of benchmarks/dense.py, see ADAPT_LLMS) and appends one record per
(model, seed) with ``benchmark: adapt`` (accuracy, macro-F1, the init and its accuracy before, steps,
the command); ``--table`` shows them beside the references of that protocol.

Then, once per run, the seed-42 ``wdcnn`` of the first protocol is exported (fp32 and int8, by the
code behind ``cascadeprune export``) and measured with ``cascadeprune bench`` (fresh process, batch 1,
1 thread), so that its latency and model memory stand beside the deployed LLMs of
results/deploy.jsonl.

One record per (model, protocol, seed) in results/reference.jsonl (accuracy, macro-F1, parameters,
training wall time, the command), and one per deployed artifact (``benchmark: reference-deploy``).
``--table`` prints, per protocol, the references beside every LLM classifier record of the same
protocol found in results/dense.jsonl, cascade.jsonl and noise.jsonl (dense and 8.7x / 13.8x),
with the file each row comes from.

    python -m benchmarks.reference                         # all protocols, seeds 42 123 456
    python -m benchmarks.reference --protocols cwru-to-mfpt-2class --seeds 42
    python -m benchmarks.reference --table                 # the tables, then the plain statement
    python -m benchmarks.reference --protocols cwru-to-mfpt-2class-5shot-adapt --no-deploy   # the CNN adapted
    python -m benchmarks.reference --adapt gpt2-deep all-minilm-l6-v2 --device cuda          # the LLMs adapted
    python -m benchmarks.reference --list [--adapt ...]    # the commands each run would execute; runs nothing
"""

from __future__ import annotations

import argparse
import json
import statistics as st
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import (CHECKPOINTS, DATA, HERE, RECIPES, RESULTS_DIR, append_records, checkpoint_name,
                                fft_probe, holm, load_records, mean_sd, provenance, run_cli)

RESULTS = RESULTS_DIR / "reference.jsonl"
PROTOCOLS = ["cwru-4class-crossload", "cwru-10class-crossload", "cwru-4class-crossload-snr0",
             "cwru-4class-crossload-snr-5", "cwru-to-mfpt-2class", "cwru-to-mfpt-2class-5shot",
             "cwru-to-mfpt-2class-5shot-adapt"]  # after cwru-to-mfpt-2class: adaptation starts from its checkpoints
CNN_EPOCHS = 15

ADAPT, ADAPT_FROM = "cwru-to-mfpt-2class-5shot-adapt", "cwru-to-mfpt-2class"
# The adaptation budget, fixed before any adapted test figure was seen (the protocol has no target-domain
# validation to choose it on: its validation windows are CWRU's, so training keeps the last weights).
# Batch 10 is the whole support set (5 windows per class), so every step is one exactly balanced pass over
# the shots; 30 steps = 30 passes: enough for the head, the front end and (in the CNN) the batch-norm
# statistics to move to the new rig, few enough that a model does not merely memorise 10 windows (the
# CNN's 1,050 from-scratch steps on CWRU would). Warm-up 3 steps: the training loop's default 50 would keep
# the learning rate below ~17 % of --lr over a 30-step budget.
ADAPT_STEPS, ADAPT_BATCH, ADAPT_WARMUP = 30, 10, 3
# LLM classifiers adapted by --adapt: each from benchmarks/dense.py's dense checkpoint on ADAPT_FROM, with
# the front end and speed jitter it was trained with; the learning rate is dense.py's recipe for the model
ADAPT_LLMS = {"gpt2-deep": dict(front_end="raw", speed_jitter=0.03),
              "all-minilm-l6-v2": dict(front_end="spectrum", speed_jitter=0.0)}


def adapt_args(init: Path, seed: int, lr: float | None = None, speed_jitter: float = 0.03) -> list[str]:
    """The ``cascadeprune train`` arguments that adapt ``init`` to ADAPT (without --out and --json)."""
    return (["train", "--task", ADAPT, "--init", str(init), "--max-steps", str(ADAPT_STEPS), "--batch-size",
             str(ADAPT_BATCH), "--warmup-steps", str(ADAPT_WARMUP), "--keep", "last", "--seed", str(seed),
             "--speed-jitter", f"{speed_jitter:g}"] + ([] if lr is None else ["--lr", f"{lr:g}"]) +
            ["--data-dir", DATA])


def cnn_command(protocol: str, seed: int) -> tuple[list[str], Path]:
    """The CLI arguments that train (or, on ADAPT, adapt) the CNN for (protocol, seed), and its output folder."""
    out = CHECKPOINTS / f"wdcnn_{protocol}_seed{seed}"
    if protocol == ADAPT:
        # default --lr (5e-4, the CNN's training rate) and speed jitter (0.03, as in its CWRU training)
        cmd = adapt_args(CHECKPOINTS / f"wdcnn_{ADAPT_FROM}_seed{seed}", seed)
    else:
        cmd = ["train", "--task", protocol, "--backbone", "wdcnn", "--epochs", str(CNN_EPOCHS), "--seed", str(seed),
               "--data-dir", DATA]
    return cmd + ["--out", str(out), "--overwrite", "--json"], out


def compressed_init(model: str, ratio: float, seed: int) -> Path:
    """The last stage of benchmarks/cascade.py's cascade run of ``model`` on ADAPT_FROM at ``ratio`` (the
    compressed classifier, after its recovery)."""
    from benchmarks.cascade import run_dir

    how = ADAPT_LLMS[model]
    ckdir = run_dir(checkpoint_name(model, ADAPT_FROM, seed, how["speed_jitter"], how["front_end"]), "cascade",
                    ratio) / "checkpoints"
    state = ckdir / "state.json"
    if not state.is_file():
        return ckdir / "missing"
    stages = json.loads(state.read_text())["stages"]
    return ckdir / f"stage-{stages[-1]['stage']:02d}" if stages else ckdir / "missing"


def split_model(name: str) -> tuple[str, float]:
    """``gpt2-deep@13.8`` -> ("gpt2-deep", 13.8); a plain name is the dense model (1.0)."""
    base, _, ratio = name.partition("@")
    return base, float(ratio) if ratio else 1.0


def llm_adapt_command(model: str, seed: int, device: str = "cpu") -> tuple[list[str], Path, Path]:
    """The CLI arguments that adapt LLM classifier ``model`` (ADAPT_LLMS, or ``NAME@RATIO`` for the cascade's
    compressed classifier at that ratio) for ``seed``; its init and output."""
    model, ratio = split_model(model)
    how = ADAPT_LLMS[model]
    init = CHECKPOINTS / checkpoint_name(model, ADAPT_FROM, seed, how["speed_jitter"], how["front_end"])
    out = CHECKPOINTS / checkpoint_name(model, ADAPT, seed, how["speed_jitter"], how["front_end"])
    if ratio != 1.0:
        init = compressed_init(model, ratio, seed)
        out = out.with_name(f"{out.name}_cascade_{ratio:g}x")
    cmd = adapt_args(init, seed, RECIPES[model]["lr"], how["speed_jitter"])
    if RECIPES[model]["lora"]:
        cmd.append("--lora")
    return cmd + ["--device", device, "--out", str(out), "--overwrite", "--json"], init, out


def _need_init(cmd: list[str], how: str) -> Path:
    init = Path(cmd[cmd.index("--init") + 1])
    if not init.is_dir():
        raise SystemExit(f"{init}: missing; adaptation starts from it ({how})")
    return init


def _cli(cmd: list[str], what: str):
    child = run_cli(["cascadeprune", *cmd])
    if child.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{child.stderr[-2000:]}")
    return child


def _train(cmd: list[str], what: str) -> dict:
    child = _cli(cmd, what)
    return json.loads(child.stdout[child.stdout.index("{"):])


def _command(cmd: list[str]) -> str:
    """The command as recorded (without --json, which only shapes the output)."""
    return "cascadeprune " + " ".join(c for c in cmd if c != "--json")


def run_cnn(protocol: str, seed: int) -> dict:
    cmd, out = cnn_command(protocol, seed)
    if protocol == ADAPT:
        _need_init(cmd, f"python -m benchmarks.reference --protocols {ADAPT_FROM} --seeds {seed} --models wdcnn")
    t0 = time.perf_counter()
    summary = _train(cmd, f"wdcnn {protocol} seed {seed}")
    meta = json.loads((out / "reference.json").read_text())
    from safetensors.torch import load_file

    params = sum(v.numel() for k, v in load_file(out / "model.safetensors").items()
                 if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    test = summary["test"]
    rec = {"benchmark": "reference", "model": "wdcnn", "protocol": protocol, "seed": seed, "test_snr_db": _snr(protocol),
           "accuracy": round(test["accuracy"], 5), "macro_f1": round(test["macro_f1"], 5),
           "val_accuracy": round(summary["val_accuracy"], 5), "params": params, "train_steps": summary["steps"],
           "train_wall_s": round(summary["wall_s"], 1), "wall_s": round(time.perf_counter() - t0, 1),
           "checkpoint": str(out.relative_to(HERE)), "train_command": _command(cmd),
           "epochs": CNN_EPOCHS, "recipe": meta.get("train")}
    if protocol == ADAPT:  # adapted, not trained: where it started and how it scored there before
        rec |= _init_fields(summary) | {"epochs": None}
    return rec


def _init_fields(summary: dict) -> dict:
    init = summary["init"]
    return {"init": str(Path(init["dir"]).relative_to(HERE)) if Path(init["dir"]).is_relative_to(HERE) else init["dir"],
            "init_accuracy": round(init["test_accuracy"], 5), "init_macro_f1": round(init["test_macro_f1"], 5),
            "init_val_accuracy": round(init["val_accuracy"], 5), "steps": summary["steps"]}


def run_adapt_llm(model: str, seed: int, device: str = "cpu") -> dict:
    """Adapt the dense LLM classifier ``model`` (trained on ADAPT_FROM by benchmarks/dense.py) to ADAPT with
    the references' budget; one ``benchmark: adapt`` record."""
    cmd, init, out = llm_adapt_command(model, seed, device)
    name, ratio = split_model(model)
    how = ADAPT_LLMS[name]
    _need_init(cmd, f"python -m benchmarks.dense --models {name} --protocols {ADAPT_FROM} --seeds {seed} "
                    f"--front-end {how['front_end']} --speed-jitter {how['speed_jitter']:g}" + (
                        "" if ratio == 1.0 else f", then benchmarks/cascade.py --model {name} --protocol {ADAPT_FROM} "
                        f"--ratios {ratio:g} --variants cascade --seeds {seed} --front-end {how['front_end']} "
                        f"--speed-jitter {how['speed_jitter']:g}"))
    t0 = time.perf_counter()
    summary = _train(cmd, f"{model} adapt seed {seed}")
    test = summary["test"]
    return {"benchmark": "adapt", "model": name, "method": "dense" if ratio == 1.0 else "cascade",
            "ratio_target": ratio, "front_end": how["front_end"], "protocol": ADAPT, "seed": seed,
            "test_snr_db": None, "accuracy": round(test["accuracy"], 5), "macro_f1": round(test["macro_f1"], 5),
            "val_accuracy": round(summary["val_accuracy"], 5), **_init_fields(summary),
            "batch_size": ADAPT_BATCH, "lr": RECIPES[name]["lr"], "lora": RECIPES[name]["lora"],
            "train_wall_s": round(summary["wall_s"], 1), "wall_s": round(time.perf_counter() - t0, 1),
            "checkpoint": str(out.relative_to(HERE)), "train_command": _command(cmd)}


def run_fft(protocol: str, seed: int) -> dict:
    from cascadeprune.tasks.bearing.train import metrics

    probe, ds, wall = fft_probe(protocol, seed)
    m = metrics(ds.y["test"], probe.predict(ds.x["test"]), ds.classes, ds.load["test"])
    v = metrics(ds.y["val"], probe.predict(ds.x["val"]), ds.classes, ds.load["val"])
    params = probe.linear.weight.numel() + probe.linear.bias.numel()
    rec = {"benchmark": "reference", "model": "fft-linear", "protocol": protocol, "seed": seed,
           "test_snr_db": _snr(protocol), "accuracy": round(m["accuracy"], 5), "macro_f1": round(m["macro_f1"], 5),
           "val_accuracy": round(v["accuracy"], 5), "params": params, "train_wall_s": round(wall, 1)}
    if protocol == ADAPT:
        rec["note"] = (f"fitted on the {len(ds.x['train'])} shot windows only: a probe fitted from scratch has no "
                       "model to adapt from")
    return rec


def deploy_rows(protocol: str) -> list[dict]:
    """Export the seed-42 CNN (fp32, int8 dynamic) and bench it beside its PyTorch directory."""
    src = CHECKPOINTS / f"wdcnn_{protocol}_seed42"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        arts = [src]
        for int8 in (False, True):
            out = Path(tmp) / ("int8" if int8 else "fp32")
            _cli(["export", str(src), "--out", str(out), "--data-dir", DATA] + (["--int8"] if int8 else []), "export")
            arts.append(out)
        child = _cli(["bench", *map(str, arts), "--batch", "1", "--threads", "1", "--runs", "300", "--json"], "bench")
        for art, r in zip(("torch", "onnx fp32", "onnx int8 dynamic"), json.loads(child.stdout)):
            rows.append({"benchmark": "reference-deploy", "model": "wdcnn", "protocol": protocol, "seed": 42,
                         "artifact": art} | {k: r.get(k) for k in (
                             "runtime", "int8", "batch", "threads", "p50_ms", "p90_ms", "p99_ms", "peak_rss_mb",
                             "model_mem_mb", "file_mb", "flops_per_window", "accuracy")})
    return rows


def _snr(protocol: str):
    from cascadeprune.tasks.bearing.protocols import get_protocol

    return get_protocol(protocol).test_snr_db


# ---------------------------------------------------------------------------------------------- tables

LLM_FILES = ("dense.jsonl", "cascade.jsonl", "noise.jsonl")


def _llm_rows(protocol: str, snr) -> dict[tuple, list[dict]]:
    """LLM classifier records of this protocol and test noise, grouped by (model, front end, method, ratio)."""
    from cascadeprune.tasks.bearing.protocols import get_protocol

    base = protocol
    if get_protocol(protocol).test_snr_db is not None:  # the noise protocols are the clean protocol's test + noise
        base = protocol.rsplit("-snr", 1)[0]
    out: dict[tuple, list[dict]] = {}
    for name in LLM_FILES:
        for r in load_records(HERE / "results" / name):  # (the real results, even when the pages filter them)
            if r.get("protocol") != base or r.get("test_snr_db") != snr or r.get("model") == "fft-linear":
                continue
            if r.get("final") is False or (name == "noise.jsonl" and snr is None):
                continue  # noise.jsonl: only each run's last stage, and its clean rows repeat cascade.jsonl's
            if r.get("method") not in ("dense", "dense-speedjitter0.03", "cascade") or "accuracy" not in r:
                continue
            ratio = r.get("ratio_target") or 1.0
            if ratio not in (1.0, 8.7, 13.8):
                continue
            key = (r["model"], r.get("front_end", "spectrum"), "dense" if ratio == 1.0 else "cascade", ratio)
            out.setdefault(key, {}).setdefault(name, []).append(r)
    # one row per key: the first file that has it (noise.jsonl re-scores cascade.py's runs; it is used only
    # where dense.py / cascade.py recorded nothing at this noise level)
    return {k + (next(iter(by)),): by[next(iter(by))] for k, by in out.items()}


def table(results: Path = RESULTS) -> str:
    recs = load_records(results)
    fmt = lambda xs: mean_sd(xs, 100)  # noqa: E731
    lines = []
    for protocol in dict.fromkeys(r["protocol"] for r in recs if r["benchmark"] == "reference"):
        refs = [r for r in recs if r["benchmark"] == "reference" and r["protocol"] == protocol]
        snr = refs[0]["test_snr_db"]
        lines += [f"**{protocol}**" + ("" if snr is None else f" (test noise {snr:g} dB)"), "",
                  "| model | kind | ratio | test accuracy % | macro-F1 % | parameters | seeds | record |",
                  "|---|---|---|---|---|---|---|---|"]
        for model in ("wdcnn", "fft-linear"):
            rs = [r for r in refs if r["model"] == model]
            if rs:
                lines.append(f"| {model} | reference{_adapted(rs, fmt)} | – | {fmt([r['accuracy'] for r in rs])} | "
                             f"{fmt([r['macro_f1'] for r in rs])} | {rs[0]['params']:,} | {len(rs)} | reference.jsonl |")
        adapted: dict[tuple, list[dict]] = {}
        for r in recs:
            if r["benchmark"] == "adapt" and r["protocol"] == protocol:
                adapted.setdefault((r["model"], r.get("front_end", "spectrum"), r.get("method", "dense"),
                                    r.get("ratio_target", 1.0)), []).append(r)
        for (model, fe, method, ratio), rs in sorted(adapted.items()):
            lines.append(f"| {model} ({fe}) | LLM {method}{_adapted(rs, fmt)} | {ratio:g}x | "
                         f"{fmt([r['accuracy'] for r in rs])} | "
                         f"{fmt([r['macro_f1'] for r in rs])} | – | {len(rs)} | reference.jsonl |")
        llm = _llm_rows(protocol, snr)
        for (model, fe, method, ratio, name), rs in sorted(llm.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][3])):
            f1 = [r["macro_f1"] for r in rs if r.get("macro_f1") is not None]
            params = rs[0].get("block_params")
            lines.append(f"| {model} ({fe}) | LLM {method} | {ratio:g}x | {fmt([r['accuracy'] for r in rs])} | "
                         f"{fmt(f1) if f1 else '–'} | {f'{params:,} block' if params else '–'} | {len(rs)} | {name} |")
        if not llm and not adapted:
            lines.append("| (no LLM classifier record on this protocol yet) | | | | | | | |")
        lines.append("")
    lines += verdicts(recs)
    dep = [r for r in recs if r["benchmark"] == "reference-deploy"]
    if dep:
        lines += ["Deployed reference (batch 1, 1 thread, fresh process each; `cascadeprune bench`):", "",
                  "| model | artifact | p50 ms | p99 ms | model MB | file MB | FLOPs/window |", "|---|---|---|---|---|---|---|"]
        for r in dep:
            lines.append(f"| {r['model']} | {r['artifact']} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | "
                         f"{r['model_mem_mb']:.1f} | {r['file_mb']:.2f} | {r['flops_per_window']:,} |")
    return "\n".join(lines)


def _adapted(rs: list[dict], fmt) -> str:
    """For adapted rows: ", adapted N steps (before: test accuracy of the inits)"; else nothing."""
    if "init" not in rs[0]:
        return ""
    return f", adapted {rs[0]['steps']} steps (before: {fmt([r['init_accuracy'] for r in rs])} %)"


def verdicts(recs: list[dict]) -> list[str]:
    """The plain statement, one line per protocol: the best compressed LLM classifier (8.7x or 13.8x, by mean
    test accuracy) against the best reference, Welch's t-test over seeds (scipy.stats.ttest_ind). "Ahead" needs
    the difference to exceed both groups' seed sd and the Holm-adjusted p (over the protocols) < 0.05; otherwise the line says which side leads and
    that the seed spread covers it."""
    from scipy import stats as sst

    out = ["Where the compressed LLM stands against the references (best compressed LLM row vs best reference, "
           "test accuracy, mean over seeds; Welch's t-test, `scipy.stats.ttest_ind`, Holm-adjusted over the "
           "protocols compared; \"ahead\" needs the difference to exceed both groups' seed sd and the adjusted "
           "p < 0.05):", ""]
    rows = []
    for protocol in dict.fromkeys(r["protocol"] for r in recs if r["benchmark"] == "reference"):
        refs = [r for r in recs if r["benchmark"] == "reference" and r["protocol"] == protocol]
        by_ref: dict[str, list[float]] = {}
        for r in refs:
            by_ref.setdefault(r["model"], []).append(r["accuracy"])
        ref_name, ref = max(by_ref.items(), key=lambda kv: st.mean(kv[1]))
        llm = {k: [r["accuracy"] for r in rs] for k, rs in _llm_rows(protocol, refs[0]["test_snr_db"]).items()
               if k[2] == "cascade"}
        for r in recs:  # compressed classifiers adapted to this protocol (benchmark "adapt")
            if r["benchmark"] == "adapt" and r["protocol"] == protocol and r.get("method") == "cascade":
                llm.setdefault((r["model"], r["front_end"], "cascade", r["ratio_target"], "adapt"), []).append(
                    r["accuracy"])
        if not llm:
            out.append(f"- **{protocol}**: no compressed LLM record yet; best reference {ref_name} "
                       f"{100 * st.mean(ref):.2f} %.")
            continue
        (model, fe, _, ratio, _), acc = max(llm.items(), key=lambda kv: st.mean(kv[1]))
        diff = 100 * (st.mean(acc) - st.mean(ref))
        spread = max(st.stdev(acc) if len(acc) > 1 else 0.0, st.stdev(ref) if len(ref) > 1 else 0.0) * 100
        p = sst.ttest_ind(acc, ref, equal_var=False).pvalue if len(acc) > 1 and len(ref) > 1 else float("nan")
        rows.append((protocol, model, fe, ratio, acc, ref_name, ref, diff, spread, p))
    for (protocol, model, fe, ratio, acc, ref_name, ref, diff, spread, p), ph in zip(rows, holm([r[-1] for r in rows])):
        if diff > 0 and diff > spread and ph < 0.05:
            word = "**the compressed LLM is ahead**"
        elif diff < 0 and -diff > spread and ph < 0.05:
            word = "**the reference is ahead**"
        else:
            word = f"no winner beyond the seed spread ({'LLM' if diff > 0 else 'reference'} leads)"
        out.append(f"- **{protocol}**: {word}: {model} ({fe}) {ratio:g}x {100 * st.mean(acc):.2f} % "
                   f"({len(acc)} seeds) vs {ref_name} {100 * st.mean(ref):.2f} % ({len(ref)} seeds), "
                   f"{diff:+.2f} pp, largest seed sd {spread:.2f} pp, p = {p:.3g} (Holm over {len(rows)} "
                   f"protocols: {ph:.3g}).")
    return out + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--protocols", nargs="+", default=PROTOCOLS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[42, 123, 456])
    ap.add_argument("--models", nargs="+", default=["wdcnn", "fft-linear"], choices=["wdcnn", "fft-linear"])
    ap.add_argument("--no-deploy", action="store_true", help="skip the export + bench rows")
    ap.add_argument("--adapt", nargs="+", default=None, metavar="MODEL",
                    choices=list(ADAPT_LLMS) + [f"{m}@{r:g}" for m in ADAPT_LLMS for r in (8.7, 13.8)],
                    help=f"instead of the references: adapt these LLM classifiers ({', '.join(ADAPT_LLMS)}; NAME@8.7 "
                         f"or NAME@13.8: the cascade's compressed one) from their {ADAPT_FROM} checkpoints to {ADAPT}, "
                         "one 'adapt' record per (model, seed)")
    ap.add_argument("--device", default="cpu", help="--adapt: where training runs (cuda on a GPU machine)")
    ap.add_argument("--list", action="store_true", help="print the training commands the run would execute and stop")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--table", action="store_true", help="print the tables and stop")
    args = ap.parse_args()
    args.argv = sys.argv[1:]
    if args.list:
        print("\n".join(listing(args)))
        return
    if args.table:
        print(table(args.results))
        return
    prov = provenance("reference", args.argv)
    if args.adapt:
        for seed in args.seeds:
            for model in args.adapt:
                rec, = append_records(args.results, [run_adapt_llm(model, seed, args.device) | prov])
                print(f"{model} adapted seed {seed}: accuracy {rec['init_accuracy']:.4f} -> {rec['accuracy']:.4f}, "
                      f"macro-F1 {rec['macro_f1']:.4f}", flush=True)
        return
    for protocol in args.protocols:
        for seed in args.seeds:
            for model in args.models:
                rec, = append_records(args.results, [(run_cnn if model == "wdcnn" else run_fft)(protocol, seed) | prov])
                print(f"{model} {protocol} seed {seed}: accuracy {rec['accuracy']:.4f}, macro-F1 {rec['macro_f1']:.4f}",
                      flush=True)
    if not args.no_deploy and "wdcnn" in args.models and 42 in args.seeds:
        for rec in append_records(args.results, [r | prov for r in deploy_rows(args.protocols[0])]):
            print(f"deploy {rec['artifact']}: p50 {rec['p50_ms']:.3f} ms, model {rec['model_mem_mb']:.1f} MB", flush=True)


def listing(args) -> list[str]:
    """One line per run the arguments ask for: what it is and the command (trains nothing)."""
    lines = []
    if args.adapt:
        for seed in args.seeds:
            for model in args.adapt:
                cmd, init, _ = llm_adapt_command(model, seed, args.device)
                lines.append(f"adapt {model} seed {seed}{'' if init.is_dir() else ' (init missing)'}: {_command(cmd)}")
        return lines
    for protocol in args.protocols:
        for seed in args.seeds:
            for model in args.models:
                if model == "wdcnn":
                    cmd, _ = cnn_command(protocol, seed)
                    missing = protocol == ADAPT and not Path(cmd[cmd.index("--init") + 1]).is_dir()
                    lines.append(f"wdcnn {protocol} seed {seed}{' (init missing)' if missing else ''}: {_command(cmd)}")
                else:
                    lines.append(f"fft-linear {protocol} seed {seed}: in process (L-BFGS on the training windows"
                                 + (", the 10 shots only)" if protocol == ADAPT else ")"))
    return lines


if __name__ == "__main__":
    main()
