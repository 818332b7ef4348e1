"""``cascadeprune inspect``: what a model is made of and whether it will prune well.

The SIA verdict is the static one (read off the architecture) and, when a ``cascadeprune sia --out``
report of this very model exists (given with ``--sia``, or stored inside the model's directory), the
measured one per granularity beside it (:func:`measured_sia`).

Example::

    info = inspect_model(load_model("smollm2-135m"))
    print(format_inspection(info))
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from cascadeprune.accounting import block_params, dense_block_params, flops_per_token, param_breakdown
from cascadeprune.arch.resolve import resolve
from cascadeprune.errors import CascadePruneError
from cascadeprune.plan import applied_plan
from cascadeprune.sia import static_check

_GATED_NAMES = {"silu": "SwiGLU", "swish": "SwiGLU", "gelu": "GeGLU", "gelu_pytorch_tanh": "GeGLU", "relu": "ReGLU"}


def attention_kind(num_heads: int, num_kv_heads: int) -> str:
    if num_kv_heads == num_heads:
        return "MHA"
    return "MQA" if num_kv_heads == 1 else "GQA"


def inspect_model(model: nn.Module, context: int = 512) -> dict:
    """A JSON-ready description of ``model``'s structure, size, cost and SIA verdict."""
    s = resolve(model)
    act = str(getattr(model.config, s.family.key_activation, "?"))
    gated = s.family.gated
    ffn = _GATED_NAMES.get(act, f"gated-{act}") if gated else act.upper()
    dense = dense_block_params(model)
    blocks = block_params(model)
    return {
        "family": s.family.name,
        "spec": s.family.origin,  # "declared" (a table entry) or "recognised (layout of ...)"
        "model_class": type(model).__name__,
        "attention": {
            "kind": attention_kind(s.dims.num_heads, s.dims.num_kv_heads),
            "num_heads": s.dims.num_heads,
            "num_kv_heads": s.dims.num_kv_heads,
            "group_size": s.dims.group_size,
            "head_dim": s.dims.head_dim,
        },
        "ffn": {"kind": ffn, "gated": gated, "activation": act, "intermediate_size": s.dims.intermediate_size,
                "parallel_to_attention": s.family.parallel},
        "tied_embeddings": _tied(model),
        "hidden_size": s.dims.hidden_size,
        "num_layers": {"dense": s.dims.num_layers, "now": len(s.layers)},
        "layers": s.per_layer_shapes(),
        "params": param_breakdown(model),
        "compression": {"dense_block_params": dense, "block_params": blocks, "ratio": dense / blocks},
        "flops_per_token": flops_per_token(model, context),
        "pruned": not applied_plan(s).is_empty(),
        "sia": static_check(s).to_dict(),
    }


def inspect_layers(model: str, task: str | None = None, plot: str | None = None, windows: int = 16,
                   batch_size: int = 8, seed: int = 42, data_dir: str | None = None) -> dict:
    """``inspect --layers``: per-layer angular distance, CKA distance, Block Influence and LCR of the model in
    ``model`` on its task's calibration windows (``task`` None: a classifier's own protocol, a causal LM's
    shipped corpus); ``plot``: also draw them to that PNG (its path is checked before the model runs)."""
    from cascadeprune.report.layer_report import layer_report, plot_layer_report
    from cascadeprune.storage import load_model
    from cascadeprune.tasks import get_task

    if plot is not None:  # refused before the model is run
        p = Path(plot)
        if p.is_dir() or not p.parent.is_dir():
            raise CascadePruneError(f"--plot {plot}: give a PNG file path in an existing folder")
    m = load_model(model)
    if task is None:  # a classifier's own protocol; a causal LM's shipped corpus
        is_clf = hasattr(m, "frontend") and hasattr(m, "classes")
        task = m.meta.get("protocol") if is_clf else "lm"
        if not task:
            raise CascadePruneError(f"{model} records no protocol: give --task PROTOCOL")
    rep = layer_report(m, get_task(task, m, source=model, data_dir=data_dir), windows=windows, batch_size=batch_size,
                       seed=seed, model_name=model, task_name=task)
    if plot is not None:
        rep["plot"] = str(plot_layer_report(rep, Path(plot)))
    return rep


def measured_sia(model: nn.Module, source: str, path: str | None = None) -> dict | None:
    """The stored `sia` report's verdicts for ``model``: the one at ``path`` (an error if it is missing or
    another model's), else the newest matching one inside the model's directory (others are skipped with a
    note); None when there is none."""
    from cascadeprune.report.sia_report import summary
    from cascadeprune.sia.stored import find_for, load_for

    if path is not None:
        (rep, where), notes = load_for(model, path), []
    else:
        rep, where, notes = find_for(model, source)
        if rep is None:
            return {"path": None, "notes": notes} if notes else None
    return {"path": str(where), "model": rep["model"], "task": rep["task"], "calibration": rep["calibration"],
            "granularities": summary(rep), "notes": notes}


def _tied(model: nn.Module) -> bool:
    """Whether the output head shares its weight with the input embedding."""
    get_in, get_out = getattr(model, "get_input_embeddings", None), getattr(model, "get_output_embeddings", None)
    out = get_out() if callable(get_out) else None
    return out is not None and callable(get_in) and out.weight is get_in().weight


def _fmt(n: int) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return str(n)


def format_inspection(info: dict) -> str:
    """Human-readable text for :func:`inspect_model`'s result."""
    a, f, p, c = info["attention"], info["ffn"], info["params"], info["compression"]
    lines = [
        f"family        {info['family']} ({info['model_class']}), spec {info['spec']}",
        f"attention     {a['kind']}: {a['num_heads']} query heads, {a['num_kv_heads']} KV heads, "
        f"D = {a['group_size']}, head_dim {a['head_dim']}",
        f"ffn           {f['kind']} ({'gated' if f['gated'] else 'not gated'}), width {f['intermediate_size']}"
        + (", in parallel with attention" if f["parallel_to_attention"] else ""),
        f"layers        {info['num_layers']['now']} of {info['num_layers']['dense']}, hidden {info['hidden_size']}",
        f"parameters    total {_fmt(p['total'])}: blocks {_fmt(p['blocks'])}, embeddings {_fmt(p['embeddings'])}, "
        f"head {_fmt(p['head'])}, other {_fmt(p['other'])}",
        f"compression   {c['ratio']:.2f}x on block parameters ({_fmt(c['dense_block_params'])} -> {_fmt(c['block_params'])})",
        f"FLOPs/token   {_fmt(info['flops_per_token']['total'])} at context {info['flops_per_token']['context']}",
        "",
        "per layer     layer: heads / KV heads / FFN channels",
    ]
    shapes = info["layers"]
    if len({(l["heads"], l["kv_heads"], l["channels"]) for l in shapes}) == 1:
        l = shapes[0]
        lines.append(f"              all {len(shapes)} layers: {l['heads']} / {l['kv_heads']} / {l['channels']}")
    else:
        lines += [f"              {l['layer']:>3}: {l['heads']} / {l['kv_heads']} / {l['channels']}" for l in shapes]
    sia = info["sia"]
    lines += ["", f"SIA (static)  {'HOLDS' if sia['holds'] else 'VIOLATED'}"]
    lines += [f"              - {r}" for r in sia["reasons"]]
    lines.append(f"              {sia['advice']}")
    lines += _format_measured(info.get("sia_measured"))
    return "\n".join(lines)


def _format_measured(m: dict | None) -> list[str]:
    if m is None:
        return ["", "SIA (measured) none stored; measure with `cascadeprune sia MODEL --task TASK --out DIR`, "
                    "show with --sia DIR"]
    lines = [""]
    if m["path"] is not None:
        cal = m["calibration"]
        lines.append(f"SIA (measured) {m['path']}: {m['task']}, {cal['windows']} calibration windows, seed {cal['seed']}")
        f = lambda x: "–" if x is None else f"{x:.2f}"  # noqa: E731
        for g, s in m["granularities"].items():
            lines.append(f"              {g:<9} {s['verdict'].upper():<9} (static {s['static']}); {s['criterion']} "
                         f"({s['mode']}): A {f(s['additivity_criterion'])}, random A {f(s['additivity_median'])}, "
                         f"|I| within {f(s['interaction_within'])} / across {f(s['interaction_across'])}, "
                         f"τ halves {f(s['tau_noise'])} -> after {f(s['tau_after'])}")
    else:
        lines.append("SIA (measured) no report of this model found")
    lines += [f"              ({n})" for n in m["notes"]]
    return lines
