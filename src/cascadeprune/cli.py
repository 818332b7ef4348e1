"""Command line: a table of subcommand -> typed function.

    cascadeprune inspect MODEL [--sia DIR_OR_JSON] [--json]
    cascadeprune inspect MODEL --layers [--task T] [--json] [--plot PNG] [--windows N --batch-size B --seed S]
    cascadeprune apply --model MODEL --plan PLAN.json --out DIR [--overwrite] [--json]
    cascadeprune data fetch cwru --to DIR [--files N ...] [--base-url URL]
    cascadeprune data describe PROTOCOL|lm[:DOMAINS][@data=PATH] [--data-dir DIR] [--json]
    cascadeprune data window FILE.mat|FILE.csv (--model ARTIFACT | --window N) [--offset N] [--fs HZ]
                             [--format json|f32] [--id ID] --out window.json|- [--overwrite]
    cascadeprune train --task PROTOCOL --backbone NAME_OR_PATH --out DIR [--lora] [--epochs E] [--seed S]
    cascadeprune train --task PROTOCOL --init CLASSIFIER_DIR --out DIR [--max-steps N] [--keep last] [--lora]
    cascadeprune eval MODEL --task PROTOCOL|lm[:DOMAINS] [--snr-db DB] [--json]
    cascadeprune compress MODEL --task PROTOCOL|lm[:DOMAINS] --ratio R --out DIR [--recipe FILE.yaml] [--set K=V ...]
                          [--calibration "prose:0.5,code:0.3"] [--resume] [--dry-run]
    cascadeprune compress CLASSIFIER --task PROTOCOL (--latency-ms T | --memory-mb M) [--runtime onnx|torch]
                          [--threads N] [--batch B] --out DIR
    cascadeprune export CLASSIFIER --out DIR [--int8] [--opset N] [--overwrite] [--json]
    cascadeprune export LM --format gguf --out DIR [--quant f16|q8_0|q4_k_m|f32] [--task lm-spec] [--threads N]
    cascadeprune bench ARTIFACT [ARTIFACT ...] [--runtime torch|onnx] [--batch 1] [--threads 1] [--runs N] [--json]
                 (GGUF exports: llama.cpp prompt/generation tokens/s, time to first token, memory)
    cascadeprune serve ARTIFACT [--http HOST:PORT] [--mqtt mqtt://HOST:PORT] [--topic-prefix P] [--client-id ID]
                       [--no-signal-check | --min-std X --max-rail-fraction F --max-repeat-fraction F]
                       [--no-ui | --ui-history N --ui-min-confidence P]   (the operator page at GET /)
    cascadeprune sia MODEL --task TASK [--granularity layers|heads|channels] [--units N] [--pairs N] [--json]
                     [--out DIR [--overwrite]]
    cascadeprune demo [--out DIR] [--overwrite]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from pathlib import Path

from cascadeprune.errors import CascadePruneError


def cmd_inspect(model: str, json_out: bool = False, context: int = 512, sia: str | None = None,
                layers: bool = False, task: str | None = None, plot: str | None = None, windows: int | None = None,
                batch_size: int | None = None, seed: int | None = None, data_dir: str | None = None) -> int:
    from cascadeprune.inspection import format_inspection, inspect_model, measured_sia
    from cascadeprune.storage import load_model

    if not layers:  # the --layers options mean nothing without it: refused, not ignored
        given = {"--task": task, "--plot": plot, "--windows": windows, "--batch-size": batch_size, "--seed": seed,
                 "--data-dir": data_dir}
        for flag, value in given.items():
            if value is not None:
                raise CascadePruneError(f"{flag}: only `inspect --layers` takes it (add --layers)")
        m = load_model(model)
        info = inspect_model(m, context=context)
        info["sia_measured"] = measured_sia(m, model, sia)  # a stored `sia --out` report: --sia, or found in MODEL/
        print(json.dumps(info, indent=2) if json_out else format_inspection(info))
        return 0
    return _inspect_layers(model, json_out, task, plot, windows or 16, batch_size or 8, 42 if seed is None else seed,
                           data_dir)


def _inspect_layers(model: str, json_out: bool, task: str | None, plot: str | None, windows: int, batch_size: int,
                    seed: int, data_dir: str | None) -> int:
    """Per-layer angular distance, CKA distance, Block Influence and LCR on the task's calibration windows."""
    from cascadeprune.inspection import inspect_layers
    from cascadeprune.report.layer_report import format_layer_report

    rep = inspect_layers(model, task, plot, windows, batch_size, seed, data_dir)
    print(json.dumps(rep, indent=2) if json_out else format_layer_report(rep))
    if plot is not None and not json_out:
        print(f"wrote {plot}")
    return 0


def _refuse_input_overwrite(model: str, out: str) -> None:
    src, dst = Path(model).resolve(), Path(out).resolve()
    if Path(model).exists() and (dst == src or src in dst.parents or (src.is_file() and dst == src.parent)):
        raise CascadePruneError(f"--out {out} would write into the input model {model}; choose another directory")


def cmd_apply(model: str, plan: str, out: str, overwrite: bool = False, json_out: bool = False) -> int:
    from cascadeprune.surgery.saved import apply_saved

    _refuse_input_overwrite(model, out)
    summary = apply_saved(model, plan, out, overwrite=overwrite)
    if json_out:
        print(json.dumps(summary, indent=2))
    else:
        how = "transformers AutoModel*.from_pretrained or cascadeprune.load_model" if summary["stock_loadable"] else (
            "cascadeprune.load_model (layer shapes differ or heads changed in a family without a head_dim key)"
        )
        print(
            f"pruned: block params {summary['block_params_before']:,} -> {summary['block_params_after']:,} "
            f"({summary['compression_ratio']:.2f}x vs dense) in {summary['apply_s']:.2f}s\n"
            f"wrote {Path(out)}/ (config.json, model.safetensors, plan.json); load with {how}"
        )
    return 0


def cmd_sia(model: str, task: str, granularity: str | None = None, criterion: str | None = None,
            mode: str = "grouped", ratio: float = 1.1, units: int = 64, pairs: int = 64, random_sets: int = 3,
            windows: int = 16, batch_size: int = 8, seed: int = 42, calibration: str | None = None,
            data_dir: str | None = None, json_out: bool = False, out: str | None = None,
            overwrite: bool = False) -> int:
    from cascadeprune.methods.config import parse_mix
    from cascadeprune.sia.measure import GRANULARITIES, format_report, sia_workflow
    from cascadeprune.sia.stored import check_out, save_report
    from cascadeprune.tasks import check_calibration

    grans = GRANULARITIES if granularity in (None, "all") else (granularity,)
    if any(g not in GRANULARITIES for g in grans):
        raise CascadePruneError(f"--granularity {granularity!r}: choose one of {', '.join(GRANULARITIES)} (or all)")
    if criterion is not None and len(grans) > 1:
        raise CascadePruneError("--criterion needs one --granularity (criteria differ between granularities)")
    # ranges are checked by the parser (each error names its flag); what is left relates two flags
    if windows < 2 * batch_size:
        raise CascadePruneError(f"--windows {windows}: need at least 2 x --batch-size = {2 * batch_size} calibration "
                                "windows (the criterion's two halves are compared); raise --windows or lower "
                                "--batch-size")
    mix = parse_mix(calibration) if calibration else None  # a RecipeError names the bad item
    check_calibration(task, mix)
    if out is not None:  # refused before minutes of measuring, not after
        check_out(out, model, overwrite)
    rep = sia_workflow(model, task, grans, data_dir=data_dir, criterion=criterion, n=windows, batch_size=batch_size,
                       seed=seed, mix=mix, mode=mode, ratio=ratio, units=units, pairs=pairs, random_sets=random_sets,
                       progress=not json_out)
    text = format_report(rep)
    print(json.dumps(rep, indent=2) if json_out else text)
    if out is not None:
        paths = save_report(rep, out, model, overwrite, text=text)
        print(f"wrote {', '.join(str(p) for p in paths.values())}; `cascadeprune inspect {model} --sia {out}` shows "
              "it beside the static verdict", file=sys.stderr if json_out else sys.stdout)
    return 0


def cmd_demo(out: str = "demo-out", overwrite: bool = False) -> int:
    from cascadeprune.demo import run_demo

    if Path(out).exists() and (not Path(out).is_dir() or any(Path(out).iterdir())) and not overwrite:
        raise CascadePruneError(f"--out {out} already exists and is not empty; choose another --out or pass --overwrite "
                                "to replace the demo's files in it")

    return run_demo(out)


def cmd_data_fetch(dataset: str, to: str, files: list[int] | None = None, base_url: str | None = None) -> int:
    from cascadeprune.tasks.bearing.cwru import OFFICIAL_URL
    from cascadeprune.tasks.bearing.fetch import fetch_cwru

    paths = fetch_cwru(to, numbers=files, base_url=base_url or OFFICIAL_URL)
    print(f"{len(paths)} CWRU file(s) verified in {Path(to) / 'cwru'}")
    return 0


def cmd_data_describe(protocol: str, data_dir: str | None = None, json_out: bool = False, window: int = 1024,
                      stride: int = 512, eval_stride: int | None = None) -> int:
    from cascadeprune.tasks import task_kind

    if task_kind(protocol) == "lm":
        return _describe_lm(protocol, json_out)
    from cascadeprune.tasks.bearing.protocols import describe
    from cascadeprune.tasks.bearing.workflow import windows

    info = describe(protocol, data_dir, windows(window, stride, eval_stride))
    if json_out:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['protocol']}: classes {', '.join(info['classes'])}; window {info['window']}, stride "
          f"{info['stride']} (train) / {info['eval_stride']} (val, test) at {info['fs']:g} Hz")
    print(f"  {info['description']}")
    for source, cls in info["class_mapping"].items():
        print(f"  class mapping: {source} -> {cls}")
    for split in ("train", "val", "test"):
        segs = [x for x in info["segments"] if x["split"] == split]
        print(f"  {split:<5} {sum(x['n_windows'] for x in segs):>6} windows from {len(segs)} segment(s)")
    return 0


def cmd_data_window(file: str, out: str, model: str | None = None, window: int | None = None,
                    sample_rate: float = 12000.0, offset: int = 0, fs: float | None = None, channel: str = "DE",
                    column: str | None = None, fmt: str = "json", rid: str | None = None,
                    overwrite: bool = False) -> int:
    from cascadeprune.deploy.runtime import model_window
    from cascadeprune.tasks.bearing.window_cut import cut_window, encode_window, write_file_atomic

    if (model is None) == (window is None):
        raise CascadePruneError("give the model to cut for (--model ARTIFACT) or a --window length, not both")
    if model is not None:
        window, sample_rate = model_window(model)
    x, rate = cut_window(file, window, sample_rate, offset=offset, fs=fs, channel=channel, column=column)
    body = encode_window(x, rate, fmt, rid)
    if out == "-":
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
        return 0
    if Path(out).exists() and not overwrite:
        raise CascadePruneError(f"--out {out} already exists; choose another or pass --overwrite")
    write_file_atomic(Path(out), body)
    print(f"wrote {out}: {window} samples at {rate:g} Hz from {file} at offset {offset} ({fmt}, {len(body)} bytes)",
          file=sys.stderr)
    return 0


def _describe_lm(spec: str, json_out: bool) -> int:
    from cascadeprune.tasks.lm.corpus import describe
    from cascadeprune.tasks.lm.task import load_spec_corpus, parse_spec

    domains, _ = parse_spec(spec)
    corpus, documents, where = load_spec_corpus(spec)
    info = describe(domains, corpus=corpus, documents=documents, where=where)
    if json_out:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{spec}: corpus {info['corpus']}; blocks of {info['block_chars']} characters, split by {info['split_rule']}")
    for d, v in info["domains"].items():
        docs = v["documents"]
        what = (f"licences {', '.join(sorted({x['licence'].split(' ')[0] for x in docs}))}" if documents is None
                else f"{len({x['source'] for x in docs})} file(s)")
        print(f"  {d:<10} {len(docs)} documents ({what}): " +
              ", ".join(f"{s} {x['blocks']} blocks / {x['chars']:,} chars" for s, x in v["splits"].items()))
    print("every block's document, character range and split: --json")
    return 0


def cmd_train(task: str, backbone: str | None, out: str, data_dir: str | None = None, lora: bool = False,
              lora_rank: int = 4, lora_alpha: int = 16, epochs: float = 10.0, max_steps: int | None = None,
              batch_size: int = 32, lr: float | None = None, seed: int = 42, patch: int | None = None,
              window: int | None = None, stride: int = 512, patience: int = 4, features: str | None = None,
              global_token: bool | None = None, speed_jitter: float = 0.03, overwrite: bool = False,
              json_out: bool = False, device: str = "cpu", init: str | None = None, keep: str = "best",
              warmup_steps: int = 50) -> int:
    """Train a classifier on ``task`` (:func:`cascadeprune.tasks.bearing.workflow.train_workflow`)."""
    from cascadeprune.tasks.bearing.workflow import train_workflow

    if init is not None:
        _refuse_input_overwrite(init, out)
    summary = train_workflow(task, backbone, out, data_dir=data_dir, lora=lora, lora_rank=lora_rank,
                             lora_alpha=lora_alpha, epochs=epochs, max_steps=max_steps, batch_size=batch_size, lr=lr,
                             seed=seed, patch=patch, window=window, stride=stride, patience=patience,
                             features=features, global_token=global_token, speed_jitter=speed_jitter,
                             overwrite=overwrite, device=device, init=init, keep=keep, warmup_steps=warmup_steps)
    started, test = summary.pop("started"), summary["test"]
    if json_out:
        print(json.dumps(summary, indent=2))
    else:
        if started is not None:
            print(f"started from {init}: val {started['val_accuracy']:.4f}, "
                  f"test accuracy {started['test_accuracy']:.4f}")
        print(f"trained {summary['steps']} steps in {summary['wall_s']:.0f}s; "
              f"{'best' if keep == 'best' else 'final'} val {summary['val_accuracy']:.4f}; "
              f"test accuracy {test['accuracy']:.4f}, macro-F1 {test['macro_f1']:.4f}\nwrote {out}/")
    return 0


def cmd_eval(model: str, task: str, data_dir: str | None = None, snr_db: float | None = None,
             json_out: bool = False, split: str = "test", noise_seed: int = 0) -> int:
    from cascadeprune.tasks import task_kind

    if task_kind(task) == "lm":
        from cascadeprune.tasks.lm import eval_workflow as lm_eval

        m = lm_eval(model, task, split)
        if json_out:
            print(json.dumps(m, indent=2))
        else:
            print(f"{task} [{split}]: perplexity {m['perplexity']:.3f} (geometric mean over domains)")
            for d, v in m["perplexity_per_domain"].items():
                print(f"  {d:<10} {v:10.3f}  ({m['tokens_per_domain'][d]:,} predicted tokens)")
        return 0
    from cascadeprune.tasks.bearing.workflow import eval_workflow

    m = eval_workflow(model, task, data_dir=data_dir, snr_db=snr_db, split=split, noise_seed=noise_seed)
    if json_out:
        print(json.dumps(m, indent=2))
        return 0
    print(f"{task} [{split}{'' if snr_db is None else f', test noise {snr_db:g} dB SNR'}]: accuracy "
          f"{m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f} on {m['n']} windows")
    print("per load: " + ", ".join(f"{k}: {v:.4f}" for k, v in m["per_load_accuracy"].items()))
    width = max(len(c) for c in m["classes"])
    print("confusion (rows true, columns predicted):")
    print(" " * (width + 2) + " ".join(f"{c[:6]:>6}" for c in m["classes"]))
    for c, row in zip(m["classes"], m["confusion"]):
        print(f"{c:>{width}}  " + " ".join(f"{v:>6}" for v in row))
    return 0


def cmd_compress(model: str, task: str, ratio: float | None, out: str, recipe: str | None = None,
                 data_dir: str | None = None, method: str | None = None, seed: int | None = None,
                 recovery_steps: int | None = None, resume: bool = False, dry_run: bool = False,
                 overwrite: bool = False, json_out: bool = False, device: str | None = None,
                 calibration: str | None = None, sets: list[str] | None = None, search_budget: str | None = None,
                 layout: str | None = None, max_loss: str | None = None, latency_ms: float | None = None,
                 memory_mb: float | None = None, runtime: str | None = None, threads: int | None = None,
                 batch: int | None = None) -> int:
    from cascadeprune import load_model
    from cascadeprune.methods.cascade import plan_run
    from cascadeprune.methods.cascade import run_compression
    from cascadeprune.methods.config import auto_overrides, build_config
    from cascadeprune.targets import TARGET_START_RATIO, target_from_flags
    from cascadeprune.tasks import check_config, get_task

    _refuse_input_overwrite(model, out)
    method, sets = auto_overrides(recipe, method, sets, ratio, search_budget, layout, max_loss)
    target = target_from_flags(task, ratio, max_loss, resume, latency_ms, memory_mb, runtime, threads, batch)
    # the same construction as the benchmarks: recipe, then flags, then --set, then validation
    cfg = build_config(recipe, sets, ratio=TARGET_START_RATIO if target else ratio, method=method, seed=seed,
                       recovery_steps=recovery_steps, device=device, calibration=calibration)
    if target and cfg.method != "auto":
        raise CascadePruneError(f"{target.flag}: only --method auto takes it (method is {cfg.method!r})")
    check_config(task, cfg, recipe)  # the task's own checks that need no model, before loading one
    m = load_model(model)
    if target:
        return _compress_to_target(m, model, task, cfg, out, target, data_dir, dry_run, overwrite, json_out)
    if cfg.method == "auto":  # auto plans inside its search; its reach is checked here, before any cost
        if dry_run:
            from cascadeprune.methods.feasibility import auto_dry_run

            info = auto_dry_run(m, cfg)
            top = info["max_ratio"]
            print(json.dumps(info, indent=2) if json_out else
                  f"auto: target {cfg.ratio or f'max-loss {cfg.auto.max_loss:g}'}, at most {top:.3g}x reachable, "
                  f"search budget {cfg.auto.search_budget}, layout {cfg.auto.layout}")
            return 0
        the_plan = None
    else:
        the_plan = plan_run(m, cfg)  # the run's own plan: an unreachable target stops here, before any cost
    if dry_run:
        from cascadeprune.report.compress_report import format_plan

        print(json.dumps(the_plan["stages"], indent=2) if json_out else format_plan(the_plan))
        return 0
    final = Path(out) / "model"
    if final.exists() and not (overwrite or resume):
        raise CascadePruneError(f"{final} exists; pass --resume to continue or --overwrite to replace it")
    the_task = get_task(task, m, source=model, data_dir=data_dir)
    tokenizer = getattr(the_task, "tokenizer", None)  # an LM's output carries its tokenizer
    result = run_compression(m, the_task, cfg, out, name=model, resume=resume,
                             save_extra=tokenizer.save_pretrained if tokenizer is not None else None)
    report, paths = result["report"], result["paths"]
    if json_out:
        keys = ("ratio_target", "ratio_achieved", report["metric"], "macro_f1")
        summary = {k: report[k] for k in keys if k in report}
        if "auto" in report:
            summary["auto"] = {"summary": report["auto"]["summary"], "chosen": report["auto"]["chosen"]}
        print(json.dumps(summary, indent=2))
    elif "auto" in report:  # a short summary of the decision log; the whole log is in report.md / report.json
        from cascadeprune.report.compress_report import auto_summary

        print(auto_summary(report["auto"]))
        print(f"final test {report['metric']} {report[report['metric']]:.4g} (dense {report['dense'][report['metric']]:.4g})")
        print(f"wrote {final}/, {Path(out) / 'plan.json'}, {paths['json']}, {paths['markdown']} (decision log), "
              f"{paths['plot']}")
    else:
        print(paths["markdown"].read_text())
        print(f"wrote {final}/, {Path(out) / 'plan.json'}, {paths['json']}, {paths['markdown']}, {paths['plot']}")
    return 0


def _compress_to_target(m, model: str, task: str, cfg, out: str, spec, data_dir, dry_run: bool, overwrite: bool,
                        json_out: bool) -> int:
    from cascadeprune.targets import compress_to_target, dry_run as target_dry_run
    from cascadeprune.tasks import get_task

    if dry_run:
        info = target_dry_run(m, cfg, spec)
        top, ratios = info["max_ratio"], info["candidate_ratios"]
        print(json.dumps(info, indent=2) if json_out else
              f"auto with a deployment target: {spec.what()}; bisection over {len(ratios)} ratios up to {top:.3g}x "
              f"(about {max(1, math.ceil(math.log2(len(ratios) + 1)))} auto runs, each exported and measured), search "
              f"budget {cfg.auto.search_budget} each")
        return 0
    if (Path(out) / "model").exists() and not overwrite:
        raise CascadePruneError(f"{Path(out) / 'model'} exists; pass --overwrite to replace it")
    the_task = get_task(task, m, source=model, data_dir=data_dir)
    res = compress_to_target(m, the_task, cfg, out, model, spec, data_dir=data_dir, progress=not json_out)
    report, t = res["report"], res["report"]["targets"]
    if json_out:
        keys = ("ratio_target", "ratio_achieved", report["metric"], "macro_f1")
        print(json.dumps({k: report[k] for k in keys if k in report} | {"targets": t}, indent=2))
        return 0
    from cascadeprune.report.compress_report import auto_summary

    print(auto_summary(report["auto"]))
    print(f"target {t['what']}: chose {t['chosen_ratio']:g}x; {t['why']}")
    for r in t["candidates"]:
        if r.get("error"):
            print(f"  {r['ratio']:>8g}x  {r['kind']:<34} no model: {r['error'][:80]}")
            continue
        val = "" if r.get("val") is None else f"val {r['val']:.4g}, "
        print(f"  {r['ratio']:>8g}x  {r['kind']:<34} {val}p50 {r['p50_ms']:.4g} ms, peak {r['peak_rss_mb']:.4g} MB"
              f"  {'meets' if r['meets'] else 'misses'}{'  <- chosen' if r.get('chosen') else ''}")
    metric = report["metric"]
    print(f"final test {metric} {report[metric]:.4g} (dense {report['dense'][metric]:.4g})")
    extra = f", {Path(out) / 'export'}/ (the measured artifact)" if spec.runtime == "onnx" else ""
    print(f"wrote {Path(out) / 'model'}/{extra}, {Path(out) / 'plan.json'}, {res['paths']['json']}, "
          f"{res['paths']['markdown']}")
    return 0


def cmd_export(classifier: str, out: str, int8: str | None = None, opset: int | None = None, overwrite: bool = False,
               task: str | None = None, data_dir: str | None = None, json_out: bool = False, fmt: str = "onnx",
               quant: str | None = None, threads: int = 1) -> int:
    if fmt == "gguf":
        return _export_gguf(classifier, out, quant or "f16", overwrite, task, threads, json_out, int8, opset)
    if quant is not None:
        raise CascadePruneError("--quant is for --format gguf; an ONNX export takes --int8")
    from cascadeprune.deploy.export import export_classifier

    info = export_classifier(classifier, out, int8=int8, opset=opset, overwrite=overwrite, task=task,
                             data_dir=data_dir)
    if json_out:
        print(json.dumps(info, indent=2))
        return 0
    par, acc = info["parity"], info["parity"]["accuracy"]
    print(f"exported {classifier} -> {out}/model.onnx ({info['file_mb']:.2f} MB, opset {info['opset']}"
          f"{', int8 ' + info['quantization']['method'] if info['int8'] else ''}); block compression {info['block_compression_ratio']:.2f}x")
    print(f"parity on {par['windows']} windows of {par['protocol']}: max |delta logit| "
          f"{par['fp32']['max_abs_logit_diff']:.2g}, argmax agreement {par['fp32']['argmax_agreement']:.2%}")
    line = f"test accuracy: PyTorch {acc['torch']:.4f}, ONNX fp32 {acc['onnx_fp32']:.4f}"
    if info["int8"]:
        q = par["int8"]
        line += (f", ONNX int8 {acc['onnx_int8']:.4f} ({q['accuracy_delta_pp']:+.2f} pp; target within "
                 f"{q['target_pp']:g} pp: {'met' if q['within_target'] else 'MISSED'})")
    print(line + f"\nwrote {out}/model.onnx and {out}/deploy.json; serve with `cascadeprune serve {out}`")
    return 0


def _export_gguf(model: str, out: str, quant: str, overwrite: bool, task: str | None, threads: int, json_out: bool,
                 int8: str | None, opset: int | None) -> int:
    from cascadeprune.deploy.gguf_export import export_gguf

    if int8 is not None or opset is not None:
        raise CascadePruneError(f"{'--int8' if int8 is not None else '--opset'} is for ONNX; a GGUF export takes "
                                "--quant f16|q8_0|q4_k_m|f32")
    info = export_gguf(model, out, quant=quant, overwrite=overwrite, task=task, threads=threads)
    if json_out:
        print(json.dumps(info, indent=2))
        return 0
    par, base = info["parity"], ("f32" if quant == "f32" else "f16")
    print(f"exported {model} -> {out}/{info['file']} ({info['file_mb']:.2f} MB, {quant}, llama.cpp arch "
          f"{info['arch']}, {len(info['layers'])} layers{'' if info['uniform'] else ', per-layer widths'})")
    for q in dict.fromkeys([base, quant]):
        f = par[q]
        print(f"  {q:<6} vs PyTorch on {par['windows']} test windows: max |delta logit| {f['max_abs_logit_diff']:.3g}, "
              f"top-1 agreement {f['top1_agreement']:.2%}; perplexity " +
              ", ".join(f"{d} {v:.2f} (PyTorch {par['torch']['perplexity_per_domain'][d]:.2f})"
                        for d, v in f["perplexity_per_domain"].items()))
    print(f"wrote {out}/{info['file']}, {out}/deploy.json and {out}/{info['modelfile']} (Ollama); run with "
          f"`python -m llama_cpp.server --model {out}/{info['file']}` or measure with `cascadeprune bench {out}`")
    return 0


def cmd_bench(artifacts: list[str], runtime: str | None = None, batch: int = 1, threads: int = 1, runs: int | None = None,
              warmup: int = 20, max_seconds: float | None = None, breakdown: bool = False,
              json_out: bool = False) -> int:
    from cascadeprune.deploy.gguf_bench import gguf_file

    if any(gguf_file(a) is not None for a in artifacts):  # GGUF artifacts: llama.cpp, tokens/s
        return _bench_gguf(artifacts, runtime, threads, runs, breakdown, json_out)
    from cascadeprune.deploy.bench import bench_artifacts, breakdown_table, table

    recs = bench_artifacts(artifacts, runtime=runtime, batch=batch, threads=threads, runs=runs or 200, warmup=warmup,
                           breakdown=breakdown, max_seconds=max_seconds)
    if json_out:
        print(json.dumps(recs, indent=2))
        return 0
    print(table(recs))
    if breakdown:
        print("\nkernel time per part (ONNX Runtime profiler, ms per call and share):")
        print(breakdown_table(recs))
    return 0


def _bench_gguf(artifacts: list[str], runtime: str | None, threads: int, runs: int | None, breakdown: bool,
                json_out: bool) -> int:
    from cascadeprune.deploy.gguf_bench import GEN_TOKENS, PROMPT_TOKENS, bench_gguf, gguf_table

    if runtime not in (None, "llama.cpp") or breakdown:
        raise CascadePruneError(f"{'--breakdown' if breakdown else '--runtime ' + runtime} is for ONNX exports; a GGUF "
                                "artifact runs in llama.cpp")
    recs = bench_gguf(artifacts, threads=threads, runs=runs or 3)
    if json_out:
        print(json.dumps(recs, indent=2))
        return 0
    print(f"llama.cpp, {threads} thread(s): prompt processing of {PROMPT_TOKENS} tokens, generation of {GEN_TOKENS} "
          f"tokens, medians of {runs or 3} run(s) after a warm-up; ratios against the first artifact")
    print(gguf_table(recs))
    return 0


def cmd_serve(artifact: str, http: str | None = None, mqtt: str | None = None, topic_prefix: str = "cascadeprune",
              client_id: str | None = None, threads: int = 1, max_batch: int = 16,
              max_body_bytes: int = 1 << 20, no_signal_check: bool = False, min_std: float | None = None,
              max_rail_fraction: float | None = None, max_repeat_fraction: float | None = None,
              rail_tolerance: float | None = None, ui: bool = True, ui_history: int = 60,
              ui_min_confidence: float = 0.6) -> int:
    from cascadeprune.serve.service import run_service

    thresholds = {"min_std": min_std, "max_rail_fraction": max_rail_fraction,
                  "max_repeat_fraction": max_repeat_fraction, "rail_tolerance": rail_tolerance}
    return run_service(artifact, http=http, mqtt=mqtt, topic_prefix=topic_prefix, client_id=client_id,
                       threads=threads, max_batch=max_batch, max_body_bytes=max_body_bytes,
                       signal_check=not no_signal_check, thresholds=thresholds, ui=ui, ui_history=ui_history,
                       ui_min_confidence=ui_min_confidence)


COMMANDS = {
    "inspect": (cmd_inspect, "describe a model: structure, parameters, FLOPs, SIA verdict; --layers: per-layer "
                             "redundancy on data"),
    "apply": (cmd_apply, "apply a pruning plan (JSON) and save a Hugging Face directory"),
    "sia": (cmd_sia, "measure the Structural Independence Assumption: do units interact when removed?"),
    "demo": (cmd_demo, "prune tiny built-in models end to end and check the results"),
    "data fetch": (cmd_data_fetch, "download the official CWRU files and verify their checksums"),
    "data describe": (cmd_data_describe, "list a protocol's segments (audit for leakage)"),
    "data window": (cmd_data_window, "cut one window from a .mat/.csv recording into window.json or window.f32 "
                                     "for serve"),
    "train": (cmd_train, "train a vibration classifier on a protocol"),
    "eval": (cmd_eval, "evaluate a classifier: accuracy, macro-F1, per-load accuracy, confusion matrix"),
    "compress": (cmd_compress, "cascaded pruning with recovery to a target compression ratio"),
    "export": (cmd_export, "export a classifier to ONNX (optionally int8), or a causal LM to GGUF for llama.cpp, "
                           "with a parity check"),
    "bench": (cmd_bench, "latency and memory of artifacts, each in a fresh process, side by side"),
    "serve": (cmd_serve, "serve diagnoses over HTTP and/or MQTT until SIGTERM, then drain"),
}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``cascadeprune: error: argument --ratio: must be > 1, got 0.5`` (exit 2)."""

    def error(self, message: str):
        self.exit(2, f"cascadeprune: error: {message} (see `{self.prog} --help`)\n")


def _number(kind, lo: float | None, hi: float | None, lo_open: bool = False):
    """An argparse type: ``kind`` (int or float), finite, in [lo, hi] (lo excluded with ``lo_open``); the error
    argparse prints names the flag (``argument --ratio: must be > 1, got 0.5``)."""
    what = "an integer" if kind is int else "a number"

    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if lo is not None and (v < lo or (lo_open and v == lo)):
            raise argparse.ArgumentTypeError(f"must be {'>' if lo_open else '>='} {lo:g}, got {text}")
        if hi is not None and v > hi:
            raise argparse.ArgumentTypeError(f"must be <= {hi:g}, got {text}")
        return v

    parse.__name__ = kind.__name__
    parse.checked_range = (lo, hi)  # tests/test_cli_errors.py finds every numeric flag by it
    return parse


def _int(lo: int | None = None, hi: int | None = None):
    return _number(int, lo, hi)


def _float(lo: float | None = None, hi: float | None = None, lo_open: bool = False):
    return _number(float, lo, hi, lo_open)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="cascadeprune", description="Structured pruning of Hugging Face transformers.")
    p.add_argument("-v", "--verbose", action="store_true", help="log surgery steps")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("inspect", help=COMMANDS["inspect"][1])
    s.add_argument("model", help="HF directory, .gguf file, pruned directory, or built-in name (smollm2-135m, "
                                 "all-minilm-l6-v2, tiny-<family>)")
    s.add_argument("--json", dest="json_out", action="store_true", help="print JSON")
    s.add_argument("--context", type=_int(1, 1 << 24), default=512, help="context length for attention FLOPs (default 512)")
    s.add_argument("--sia", default=None, metavar="DIR_OR_JSON",
                   help="a report written by `cascadeprune sia --out DIR` (the folder or its sia.json): show its "
                        "measured verdict per granularity (default: MODEL/sia.json or MODEL/*/sia.json if present)")
    s.add_argument("--layers", action="store_true",
                   help="per-layer angular distance, CKA distance, Block Influence and LCR between each layer's input "
                        "and output on the task's calibration windows (low = redundant); see docs/layers-and-targets.md")
    s.add_argument("--task", default=None, help="--layers: a bearing protocol or lm[:DOMAINS][@...] (default: a "
                                                "classifier's own protocol, lm for a causal LM)")
    s.add_argument("--plot", default=None, metavar="PNG", help="--layers: also draw the measures over depth here")
    s.add_argument("--windows", type=_int(1, 10**6), default=None, help="--layers: calibration windows (default 16)")
    s.add_argument("--batch-size", type=_int(1, 1 << 16), default=None, help="--layers: windows per batch (default 8)")
    s.add_argument("--seed", type=_int(0, 2**32 - 1), default=None, help="--layers: which windows (default 42)")
    _data_args(s)
    s = sub.add_parser("apply", help=COMMANDS["apply"][1])
    s.add_argument("--model", required=True, help="model to prune (same forms as inspect)")
    s.add_argument("--plan", required=True, help="plan JSON (format cascadeprune-plan/1)")
    s.add_argument("--out", required=True, help="output directory (written atomically)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    s.add_argument("--json", dest="json_out", action="store_true", help="print a JSON summary")
    s = sub.add_parser("demo", help=COMMANDS["demo"][1])
    s.add_argument("--out", default="demo-out", help="where to write the demo outputs (default demo-out)")
    s.add_argument("--overwrite", action="store_true", help="write into an existing non-empty --out, replacing the "
                                                            "demo's own files there")

    data = sub.add_parser("data", help="bearing data: fetch and describe").add_subparsers(dest="data_command",
                                                                                         required=True)
    s = data.add_parser("fetch", help=COMMANDS["data fetch"][1])
    s.add_argument("dataset", choices=["cwru"])
    s.add_argument("--to", required=True, help="data folder; files go to TO/cwru/")
    s.add_argument("--files", type=_int(1, 1 << 20), nargs="+", help="file numbers (default: all in the catalogue)")
    s.add_argument("--base-url", help="URL pattern with {number} (default: the CWRU Data Center)")
    s = data.add_parser("describe", help=COMMANDS["data describe"][1])
    s.add_argument("protocol")
    _data_args(s)
    s.add_argument("--json", dest="json_out", action="store_true",
                   help="print the whole description (every segment or block with its split) as JSON")
    s.add_argument("--window", type=_int(16, 1 << 22), default=1024)
    s.add_argument("--stride", type=_int(1, 1 << 22), default=512)
    s.add_argument("--eval-stride", type=_int(1, 1 << 22), default=None, help="validation/test stride (default: the window)")
    s = data.add_parser("window", help=COMMANDS["data window"][1])
    s.add_argument("file", help="a CWRU .mat file, or a .csv/.txt of samples (one per line, or --column)")
    s.add_argument("--out", required=True, help="output file (written atomically), or - for stdout")
    s.add_argument("--model", default=None, metavar="ARTIFACT",
                   help="export or classifier directory: its window length and sample rate")
    s.add_argument("--window", type=_int(16, 1 << 22), default=None, help="window length instead of --model (at 12 kHz)")
    s.add_argument("--offset", type=_int(0, 10**12), default=0, help="first sample, at the model's rate (default 0)")
    s.add_argument("--fs", type=_float(0, 1e7, lo_open=True), default=None,
                   help="the file's sampling rate in Hz (required for CSV; default for .mat: the CWRU catalogue's)")
    s.add_argument("--channel", default="DE", choices=["DE", "FE", "BA"], help=".mat channel (default DE)")
    s.add_argument("--column", default=None, help="CSV column: header name or 0-based index")
    s.add_argument("--format", dest="fmt", choices=["json", "f32"], default="json",
                   help="json: {\"id\", \"signal\", \"sample_rate\"} for HTTP/MQTT; f32: raw float32 little-endian")
    s.add_argument("--id", dest="rid", default=None, help="the JSON message id (MQTT answers carry it)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing --out")

    s = sub.add_parser("train", help=COMMANDS["train"][1])
    s.add_argument("--task", required=True, help="protocol name (see `cascadeprune data describe`)")
    s.add_argument("--init", default=None, metavar="DIR",
                   help="start from this trained classifier directory (LLM classifier or wdcnn) instead of a "
                        "fresh model: its classes, window and front end must match; it is never modified; "
                        "the output records it (`init` in classifier.json / reference.json)")
    s.add_argument("--backbone", default=None, help="required without --init; from scratch: gpt2-10m (MHA+GELU), "
                                                      "gqa-gelu-10m, "
                                                      "mha-swiglu-10m, llama-10m (GQA+SwiGLU), gpt2-deep; "
                                                      "pretrained: all-minilm-l6-v2, smollm2-135m; a .gguf file or a "
                                                      "Hugging Face directory; or wdcnn, the reference 1-D CNN (no "
                                                      "transformer: trained to compare with)")
    s.add_argument("--out", required=True)
    _data_args(s)
    s.add_argument("--lora", action="store_true", help="LoRA on attention (front end and head train fully)")
    s.add_argument("--lora-rank", type=_int(1, 4096), default=4)
    s.add_argument("--lora-alpha", type=_int(1, 1 << 16), default=16)
    s.add_argument("--epochs", type=_float(0, 1e6, lo_open=True), default=10.0)
    s.add_argument("--max-steps", type=_int(1, 10**9), default=None)
    s.add_argument("--batch-size", type=_int(1, 1 << 16), default=32)
    s.add_argument("--lr", type=_float(0, 10, lo_open=True), default=None, help="default 5e-4 (full) or 1e-3 (LoRA)")
    s.add_argument("--seed", type=_int(0, 2**32 - 1), default=42)
    s.add_argument("--patch", type=_int(1, 1 << 16), default=None,
                   help="samples (raw) or spectral bins (spectrum) per token (default 32, or --init's)")
    s.add_argument("--features", choices=["spectrum", "raw", "both"], default=None,
                   help="front-end tokens: log-spectrum bands (default), time-domain patches, or both")
    s.add_argument("--no-global-token", dest="global_token", action="store_false", default=None,
                   help="drop the token that projects the whole log spectrum")
    s.add_argument("--speed-jitter", type=_float(0, 0.5), default=0.03,
                   help="augment: time-stretch training windows by up to +-this fraction (a load change is a "
                        "speed change; measured: gpt2-10m cwru-4class-crossload 95.2 -> 99.6 %%; 0 to disable)")
    s.add_argument("--window", type=_int(16, 1 << 22), default=None, help="samples per window (default 1024, or --init's)")
    s.add_argument("--stride", type=_int(1, 1 << 22), default=512)
    s.add_argument("--patience", type=_int(0, 10**6), default=4, help="validations without improvement before stopping")
    s.add_argument("--warmup-steps", type=_int(0, 10**9), default=50,
                   help="linear learning-rate warm-up before the cosine decay (default 50; a budget of a few "
                        "dozen steps, e.g. few-shot adaptation, needs fewer or it never reaches --lr)")
    s.add_argument("--keep", choices=["best", "last"], default="best",
                   help="best: stop early and keep the best-validation weights (default); last: train every "
                        "step and keep the final weights (when validation cannot choose, e.g. few-shot "
                        "adaptation validated on the source domain)")
    s.add_argument("--device", default="cpu", help="where training runs, e.g. cuda (default cpu)")
    s.add_argument("--overwrite", action="store_true")
    s.add_argument("--json", dest="json_out", action="store_true")

    s = sub.add_parser("eval", help=COMMANDS["eval"][1])
    s.add_argument("model", help="classifier directory, or a causal LM with --task lm[:DOMAINS]")
    s.add_argument("--task", required=True, help="a bearing protocol, or lm[:DOMAINS][@seq=N,eval=N,val=N,data=PATH,tokenizer=PATH]")
    _data_args(s)
    s.add_argument("--snr-db", type=_float(-100, 200), default=None, help="add white noise at this SNR to the test windows")
    s.add_argument("--noise-seed", type=_int(0, 2**32 - 1), default=0)
    s.add_argument("--split", choices=["train", "val", "test"], default="test", help="lm tasks: val or test")
    s.add_argument("--json", dest="json_out", action="store_true")
    _compress_args(sub)
    _sia_args(sub)
    _deploy_args(sub)
    _serve_args(sub)
    return p


def _sia_args(sub) -> None:
    s = sub.add_parser("sia", help=COMMANDS["sia"][1])
    s.add_argument("model", help="causal LM (--task lm) or classifier directory (a bearing protocol); same forms as "
                                 "inspect")
    s.add_argument("--task", required=True, help="lm[:DOMAINS][@seq=N,...] or a bearing protocol: its calibration "
                                                 "data and loss")
    s.add_argument("--granularity", default=None, help="layers, heads or channels (default: all three)")
    s.add_argument("--criterion", default=None, help="the criterion whose set and ranking are tested (default: lcr "
                                                     "for layers, wanda_sp for heads and channels)")
    s.add_argument("--mode", choices=["grouped", "naive"], default="grouped")
    s.add_argument("--ratio", type=_float(1, 1e6, lo_open=True), default=1.1, help="compression ratio whose criterion set is tested "
                                                            "(default 1.1)")
    s.add_argument("--units", type=_int(2, 10**6), default=64,
                   help="units in the clustered sample whose single removal is measured (default 64; all when it "
                        "covers them). Each removal set (the criterion set and every random set) adds up to "
                        "max(8, UNITS/4) of its own units not already measured, so up to UNITS + (1 + RANDOM_SETS) x "
                        "max(8, UNITS/4) are measured in all; the report says how many came from where")
    s.add_argument("--pairs", type=_int(0, 10**6), default=64, help="pairs among them (default 64)")
    s.add_argument("--random-sets", type=_int(0, 10**4), default=3, help="random sets of the criterion set's size (default 3)")
    s.add_argument("--windows", type=_int(2, 10**6), default=16, help="calibration windows (default 16)")
    s.add_argument("--batch-size", type=_int(1, 1 << 16), default=8)
    s.add_argument("--seed", type=_int(0, 2**32 - 1), default=42)
    s.add_argument("--calibration", default=None, metavar="MIX", help='calibration domains and weights, e.g. '
                                                                      '"prose:1,code:1" (default: the task\'s own)')
    _data_args(s)
    s.add_argument("--json", dest="json_out", action="store_true")
    s.add_argument("--out", default=None, metavar="DIR",
                   help="also write DIR/sia.json (the --json content), sia.md and sia.png, atomically; not the model's "
                        "own directory (a folder inside it, e.g. MODEL/sia, is fine: inspect looks there)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def _serve_args(sub) -> None:
    s = sub.add_parser("serve", help=COMMANDS["serve"][1])
    s.add_argument("artifact", help="export directory (model.onnx + deploy.json), or a classifier directory "
                                    "(PyTorch fallback)")
    s.add_argument("--http", metavar="HOST:PORT", help="serve POST /v1/predict, GET /health, GET /metrics here")
    s.add_argument("--mqtt", metavar="mqtt://HOST:PORT", help="broker to take PREFIX/+/vibration from (QoS 1)")
    s.add_argument("--topic-prefix", default="cascadeprune", help="MQTT topic prefix (default cascadeprune)")
    s.add_argument("--client-id", default=None, help="MQTT client id; fixed, so the broker keeps the session "
                                                    "(default cascadeprune-MODEL_ID; one per running service)")
    s.add_argument("--threads", type=_int(1, 1024), default=1, help="intra-op threads of the model (default 1)")
    s.add_argument("--max-batch", type=_int(1, 1 << 16), default=16, help="most windows per model call (default 16)")
    s.add_argument("--max-body-bytes", type=_int(1, 1 << 31), default=1 << 20,
                   help="larger HTTP bodies get 413 before they are read (default 1048576)")
    s.add_argument("--no-ui", dest="ui", action="store_false",
                   help="no operator page (GET /, /v1/devices, /v1/status) on the --http side; see docs/operator-page.md")
    s.add_argument("--ui-history", type=_int(1, 10**6), default=60, help="results per device the page keeps (default 60)")
    s.add_argument("--ui-min-confidence", type=_float(0, 1), default=0.6,
                   help="the page highlights a device whose last diagnosis is less sure than this (default 0.6)")
    q = s.add_argument_group("signal quality (sensor_fault answers; defaults: deploy.json's signal_quality "
                             "thresholds, see docs/serve.md)")
    q.add_argument("--no-signal-check", action="store_true",
                   help="answer every window with a bearing class, even a flat, clipped or stuck one")
    q.add_argument("--min-std", type=_float(0, 1e9), default=None, help="flat below this window std (0: never)")
    q.add_argument("--max-rail-fraction", type=_float(0, 1, lo_open=True), default=None,
                   help="clipped above this share of samples at the window's max or min (1: never)")
    q.add_argument("--max-repeat-fraction", type=_float(0, 1, lo_open=True), default=None,
                   help="stuck above this share of samples equal to the previous one (1: never)")
    q.add_argument("--rail-tolerance", type=_float(0, 0.5), default=None,
                   help="'at the max or min' means within this share of the window's range (default 0.001)")


def _deploy_args(sub) -> None:
    s = sub.add_parser("export", help=COMMANDS["export"][1])
    s.add_argument("classifier", metavar="MODEL", help="classifier directory (from `cascadeprune train`, or compress's "
                   "OUT/model); with --format gguf a causal LM: compress's OUT/model, a llama-family Hugging Face "
                   "directory, a .gguf or smollm2-135m")
    s.add_argument("--out", required=True, help="export directory: model.onnx (or model.gguf) + deploy.json (written "
                                                "atomically)")
    s.add_argument("--format", dest="fmt", choices=["onnx", "gguf"], default="onnx",
                   help="onnx (classifiers, default) or gguf (causal LMs, for llama.cpp)")
    s.add_argument("--quant", choices=["f16", "q8_0", "q4_k_m", "f32"], default=None,
                   help="GGUF weights (default f16); q8_0 and q4_k_m come from llama.cpp's own quantizer")
    s.add_argument("--threads", type=_int(1, 1024), default=1, help="GGUF: threads for quantizing and the parity "
                                                                    "check (default 1)")
    s.add_argument("--int8", nargs="?", const="dynamic", choices=["dynamic", "static"], default=None,
                   help="int8 MatMul weights; activations quantized per call (dynamic, the default) or with ranges "
                        "calibrated on 256 training windows (static)")
    s.add_argument("--opset", type=_int(1, 10**3), default=None, help="ONNX opset, 18 or newer (default: the exporter's); one it cannot write is refused, "
                        "never silently replaced")
    s.add_argument("--task", default=None, help="protocol for the parity windows (default: the classifier's own); "
                   "GGUF: an lm task spec (default lm@eval=16,val=1, e.g. lm@data=my_text/)")
    _data_args(s)
    s.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    s.add_argument("--json", dest="json_out", action="store_true", help="print deploy.json")
    s = sub.add_parser("bench", help=COMMANDS["bench"][1])
    s.add_argument("artifacts", nargs="+", metavar="ARTIFACT", help="export or classifier directories; ratios are "
                                                                    "taken against the first")
    s.add_argument("--runtime", choices=["torch", "onnx", "llama.cpp"], default=None,
                   help="default: onnx for an export, torch for a classifier directory, llama.cpp for a GGUF export")
    s.add_argument("--batch", type=_int(1, 1 << 16), default=1, help="windows per call (default 1)")
    s.add_argument("--threads", type=_int(1, 1024), default=1, help="intra-op threads (default 1)")
    s.add_argument("--runs", type=_int(1, 10**7), default=None, help="timed calls (default 200); GGUF: prompt + "
                                                                     "generation rounds (default 3)")
    s.add_argument("--warmup", type=_int(0, 10**7), default=20, help="untimed calls first (default 20)")
    s.add_argument("--max-seconds", type=_float(0, 1e7, lo_open=True), default=None,
                   help="stop the timed calls after this long (at least 20 run); the record says how many ran")
    s.add_argument("--breakdown", action="store_true", help="time per part (front end, blocks, head) from the "
                                                           "ONNX Runtime profiler; exports only")
    s.add_argument("--json", dest="json_out", action="store_true", help="print a list of records")


def _compress_args(sub) -> None:
    s = sub.add_parser("compress", help=COMMANDS["compress"][1])
    s.add_argument("model", help="classifier directory (bearing protocols) or causal LM (--task lm): a built-in "
                                 "name (smollm2-135m, tiny-llama), .gguf file or Hugging Face directory")
    s.add_argument("--task", required=True, help="a bearing protocol, or lm[:DOMAINS][@seq=N,eval=N,val=N,data=PATH,tokenizer=PATH] "
                                                 "(perplexity per text domain; see `data describe lm`)")
    s.add_argument("--ratio", type=_float(1, 1e6, lo_open=True), default=None, help="target compression ratio on block parameters")
    s.add_argument("--out", required=True, help="output folder: model/, plan.json, report.*, checkpoints/")
    s.add_argument("--recipe", help="YAML recipe (keys map 1:1 to cascadeprune.methods.config)")
    s.add_argument("--set", dest="sets", action="append", metavar="KEY=VALUE", default=None,
                   help="override a recipe key after the flags, e.g. stages.*.recovery.steps=20 (repeatable)")
    s.add_argument("--calibration", default=None, metavar="MIX",
                   help='calibration domains and weights, e.g. "prose:0.5,code:0.3,technical:0.2" (default: the '
                        "task's own; a bearing domain is a protocol[@load=L][@snr=DB])")
    _data_args(s)
    from cascadeprune.methods.registry import METHODS, help_text  # torch-free: --help stays fast

    s.add_argument("--method", choices=list(METHODS), default=None,
                   help=(help_text() + ". A baseline brings its own criterion and schedule; the recipe gives the "
                         "calibration and the summed recovery budget, used or not as its authors do: "
                         "--set baseline_recovery=budget|none overrides").replace("%", "%%"))
    s.add_argument("--search-budget", default=None, metavar="N|Tm",
                   help="method auto: candidates scored on validation (e.g. 24, the default) or search time (20m, 90s)")
    s.add_argument("--layout", default=None, metavar="nonuniform|uniform",
                   help="method auto: uniform keeps the same widths in every kept layer (plans every runtime loads); "
                        "default nonuniform")
    s.add_argument("--max-loss", default=None, metavar="X",
                   help="method auto, instead of --ratio: the most compression whose validation loss stays within X "
                        "(pp of accuracy for classifiers; perplexity ratio to dense for --task lm)")
    t = s.add_argument_group("deployment targets (method auto, classifier tasks; instead of --ratio): the best-"
                             "validation model whose exported artifact meets them, see docs/layers-and-targets.md")
    t.add_argument("--latency-ms", type=_float(0, 1e9, lo_open=True), default=None, metavar="T",
                   help="p50 latency of one call, measured by the bench worker in a fresh process")
    t.add_argument("--memory-mb", type=_float(0, 1e9, lo_open=True), default=None, metavar="M",
                   help="peak RSS of the process running the artifact (runtime included)")
    t.add_argument("--runtime", choices=["onnx", "torch"], default=None,
                   help="what the candidates are measured in: onnx (exported, fp32; the default) or torch")
    t.add_argument("--threads", type=_int(1, 1024), default=None, help="intra-op threads when measuring (default 1)")
    t.add_argument("--batch", type=_int(1, 1 << 16), default=None, help="windows per call when measuring (default 1)")
    s.add_argument("--seed", type=_int(0, 2**32 - 1), default=None)
    s.add_argument("--recovery-steps", type=_int(0, 10**9), default=None, help="override every stage's recovery budget")
    s.add_argument("--device", default=None,
                   help="where recovery trains, e.g. cuda (default: the recipe's, else cpu); scoring stays on the CPU")
    s.add_argument("--resume", action="store_true", help="continue from the last stage checkpoint in --out")
    s.add_argument("--dry-run", action="store_true", help="print the plan the run will follow (stages, cuts, recovery steps, skipped stages) "
                                                       "and stop; with --json, its stages as JSON")
    s.add_argument("--overwrite", action="store_true")
    s.add_argument("--json", dest="json_out", action="store_true")


def _data_args(s) -> None:
    s.add_argument("--data-dir", default=None,
                   help="folder with cwru/ and mfpt/ (default: $CASCADEPRUNE_DATA, ./data, ../shared/data)")


# what the extras in pyproject.toml bring (a bare install has numpy only)
OPTIONAL_PACKAGES = {"torch", "transformers", "safetensors", "accelerate", "gguf", "tqdm", "peft", "scipy", "yaml",
                     "pydantic", "matplotlib", "onnx", "onnxscript", "onnxruntime", "starlette", "uvicorn",
                     "prometheus_client", "paho", "llama_cpp"}


def _quiet_progress_bars() -> None:
    """Our own output says what happened: no Hugging Face progress bars. Without importing transformers
    (serve and bench of an ONNX artifact never load it): the variable is read when it is imported."""
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:  # already imported (main() called in-process): tell it directly
        sys.modules["transformers"].utils.logging.disable_progress_bar()


def main(argv: list[str] | None = None) -> int:
    try:
        args = vars(build_parser().parse_args(argv))
    except SystemExit as e:  # argparse: a bad flag (2, its one-line error printed) or --help (0); the same code in-process
        return e.code if isinstance(e.code, int) else 2
    logging.basicConfig(level=logging.INFO if args.pop("verbose") else logging.WARNING, format="%(message)s")
    _quiet_progress_bars()
    command = args.pop("command")
    if command == "data":
        command = f"data {args.pop('data_command')}"
    fn = COMMANDS[command][0]
    try:
        rc = fn(**args)
        sys.stdout.flush()  # inside the try: a reader that went away is seen here, not at interpreter exit
        return rc
    except CascadePruneError as e:
        print(f"cascadeprune: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader closed the pipe (`cascadeprune inspect M | head -1`): it has what it wanted. Point stdout at
        # /dev/null so the interpreter's final flush does not raise again, and end quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except ModuleNotFoundError as e:  # an edge install ([serve]) asked for a command of the full one
        if (e.name or "").split(".")[0] not in OPTIONAL_PACKAGES:
            raise
        print(f"cascadeprune: error: `cascadeprune {command}` needs {e.name}, which this install lacks: "
              "pip install 'cascadeprune[full]'", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
