"""Command line: a table of subcommand -> typed function.

    cascadeprune inspect MODEL [--json]
    cascadeprune apply --model MODEL --plan PLAN.json --out DIR [--overwrite] [--json]
    cascadeprune demo [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from cascadeprune.errors import CascadePruneError


def cmd_inspect(model: str, json_out: bool = False, context: int = 512) -> int:
    from cascadeprune.inspection import format_inspection, inspect_model
    from cascadeprune.storage import load_model

    info = inspect_model(load_model(model), context=context)
    print(json.dumps(info, indent=2) if json_out else format_inspection(info))
    return 0


def _refuse_input_overwrite(model: str, out: str) -> None:
    src, dst = Path(model).resolve(), Path(out).resolve()
    if Path(model).exists() and (dst == src or src in dst.parents or (src.is_file() and dst == src.parent)):
        raise CascadePruneError(f"--out {out} would write into the input model {model}; choose another directory")


def cmd_apply(model: str, plan: str, out: str, overwrite: bool = False, json_out: bool = False) -> int:
    from cascadeprune.accounting import block_params, dense_block_params
    from cascadeprune.plan import PruningPlan
    from cascadeprune.storage import load_model, save_model
    from cascadeprune.surgery import apply_plan

    _refuse_input_overwrite(model, out)
    the_plan = PruningPlan.load(plan)
    m = load_model(model)
    before = block_params(m)
    t0 = time.perf_counter()
    pruned = apply_plan(m, the_plan, inplace=True)
    t_apply = time.perf_counter() - t0
    save_model(pruned, out, overwrite=overwrite)
    rec = pruned.config.cascadeprune
    summary = {
        "out": str(out),
        "block_params_before": before,
        "block_params_after": block_params(pruned),
        "dense_block_params": dense_block_params(pruned),
        "compression_ratio": dense_block_params(pruned) / block_params(pruned),
        "uniform": rec["uniform"],
        "stock_loadable": rec["stock_loadable"],
        "apply_s": round(t_apply, 4),
    }
    if json_out:
        print(json.dumps(summary, indent=2))
    else:
        how = "transformers AutoModel*.from_pretrained or cascadeprune.load_model" if rec["stock_loadable"] else (
            "cascadeprune.load_model (layer shapes differ or heads changed in a family without a head_dim key)"
        )
        print(
            f"pruned: block params {before:,} -> {summary['block_params_after']:,} "
            f"({summary['compression_ratio']:.2f}x vs dense) in {t_apply:.2f}s\n"
            f"wrote {Path(out)}/ (config.json, model.safetensors, plan.json); load with {how}"
        )
    return 0


def cmd_demo(out: str = "demo-out") -> int:
    from cascadeprune.demo import run_demo

    return run_demo(out)


COMMANDS = {
    "inspect": (cmd_inspect, "describe a model: structure, parameters, FLOPs, SIA verdict"),
    "apply": (cmd_apply, "apply a pruning plan (JSON) and save a Hugging Face directory"),
    "demo": (cmd_demo, "prune tiny built-in models end to end and check the results"),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cascadeprune", description="Structured pruning of Hugging Face transformers.")
    p.add_argument("-v", "--verbose", action="store_true", help="log surgery steps")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("inspect", help=COMMANDS["inspect"][1])
    s.add_argument("model", help="HF directory, .gguf file, pruned directory, or built-in name (smollm2-135m, "
                                 "all-minilm-l6-v2, tiny-<family>)")
    s.add_argument("--json", dest="json_out", action="store_true", help="print JSON")
    s.add_argument("--context", type=int, default=512, help="context length for attention FLOPs (default 512)")
    s = sub.add_parser("apply", help=COMMANDS["apply"][1])
    s.add_argument("--model", required=True, help="model to prune (same forms as inspect)")
    s.add_argument("--plan", required=True, help="plan JSON (format cascadeprune-plan/1)")
    s.add_argument("--out", required=True, help="output directory (written atomically)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    s.add_argument("--json", dest="json_out", action="store_true", help="print a JSON summary")
    s = sub.add_parser("demo", help=COMMANDS["demo"][1])
    s.add_argument("--out", default="demo-out", help="where to write the demo outputs (default demo-out)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    logging.basicConfig(level=logging.INFO if args.pop("verbose") else logging.WARNING, format="%(message)s")
    import transformers

    transformers.utils.logging.disable_progress_bar()  # our own output says what happened
    fn = COMMANDS[args.pop("command")][0]
    try:
        return fn(**args)
    except CascadePruneError as e:
        print(f"cascadeprune: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
