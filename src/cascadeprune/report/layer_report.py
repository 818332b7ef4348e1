"""``cascadeprune inspect MODEL --layers``: how much each layer changes the data passing through it.

Per layer, between its input and its output hidden states on the task's calibration windows (the data the
layer criteria see): the angular distance arccos(cos)/pi averaged over tokens, the CKA distance (1 - linear CKA
over a fixed sample of ``calib.CKA_TOKENS`` tokens, each scaled to unit norm; ``cka_raw`` in the JSON: without that
scaling), Block Influence (ShortGPT: 1 - cos) and the paper's LCR.
Every one is the score of the layer criterion of the same name (``cascadeprune.importance``, protected ends
aside): low = the layer barely transforms its input = the first candidate for removal.

Example::

    rep = layer_report(model, task, windows=16, batch_size=8, seed=42)
    print(format_layer_report(rep))
    plot_layer_report(rep, Path("layers.png"))
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from pathlib import Path

from torch import nn

from cascadeprune.calib import CKA_TOKENS, collect

FORMAT = "cascadeprune-layers/1"
# the report's columns: JSON key -> (header, the layer criterion that ranks by it)
COLUMNS = {"angular": ("angular", "angular"), "cka": ("CKA dist", "cka"),
           "block_influence": ("block infl.", "block_influence"), "lcr": ("LCR", "lcr")}


def layer_report(model: nn.Module, task, windows: int = 16, batch_size: int = 8, seed: int = 42,
                 mix: dict | None = None, model_name: str = "", task_name: str = "") -> dict:
    """Per-layer redundancy of ``model`` on ``windows`` calibration windows of ``task`` (one pass, no gradients)."""
    batches = task.calibration_batches(mix, windows, batch_size, seed)
    t0 = time.perf_counter()
    stats = collect(model, batches, loss_fn=task.loss)
    wall = time.perf_counter() - t0
    rows = []
    for l, c in zip(stats.structure.layers, stats.layers):
        rows.append({"layer": l.orig_index, "angular": c.angular, "cka": c.cka_distance,
                     "block_influence": c.block_influence, "lcr": c.lcr, "cka_raw": c.cka_distance_raw})
    n = len(rows)
    ranks = {}
    for key in COLUMNS:  # the order each criterion would remove layers in (the ends are protected by the criteria)
        inner = rows[1:-1] if n > 2 else rows
        ranks[key] = [r["layer"] for r in sorted(inner, key=lambda r: (r[key], r["layer"]))]
    tokens = stats.layers[0].count if stats.layers else 0
    return {"format": FORMAT, "model": model_name, "task": task_name or getattr(task, "name", ""),
            "data": {"split": "calibration (training data)", "windows": windows, "batch_size": batch_size,
                     "seed": seed, "tokens": tokens, "cka_tokens": min(CKA_TOKENS, tokens)},
            "layers": rows, "removal_order": ranks, "collect_s": round(wall, 3),
            "note": "low = the layer barely changes its input = removed first by that criterion; the first and last "
                    "layers are protected by the layer criteria and left out of removal_order"}


def format_layer_report(rep: dict) -> str:
    """The report as a text table, one row per layer, with a bar for the angular distance."""
    d = rep["data"]
    lines = [f"{rep['model'] or 'model'} on {rep['task']}: per-layer change between input and output "
             f"({d['windows']} calibration windows, {d['tokens']:,} tokens; CKA on {d['cka_tokens']})",
             f"{'layer':>5}  " + "  ".join(f"{h:>11}" for h, _ in COLUMNS.values()) + "  angular"]
    top = max((r["angular"] for r in rep["layers"]), default=0.0) or 1.0
    for r in rep["layers"]:
        bar = "#" * max(0, round(20 * r["angular"] / top)) if math.isfinite(r["angular"]) else "?"
        lines.append(f"{r['layer']:>5}  " + "  ".join(f"{r[k]:>11.4f}" for k in COLUMNS) + f"  {bar}")
    for key, (header, crit) in COLUMNS.items():
        order = rep["removal_order"][key]
        lines.append(f"removed first by {crit}: " + (", ".join(str(i) for i in order[:5]) or "none") +
                     (" ..." if len(order) > 5 else ""))
    lines.append("low = the layer barely changes its input; first and last layers are protected by the criteria")
    return "\n".join(lines)


def plot_layer_report(rep: dict, path: Path) -> Path:
    """One line per measure over depth, written atomically to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    xs = [r["layer"] for r in rep["layers"]]
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for key, (header, _) in COLUMNS.items():
        if key == "lcr":
            continue  # unbounded: drawn on its own axis
        ax.plot(xs, [r[key] for r in rep["layers"]], marker="o", markersize=3, label=header)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer (original index)")
    ax.set_ylabel("distance input → output")
    ax2 = ax.twinx()
    ax2.plot(xs, [r["lcr"] for r in rep["layers"]], color="grey", linestyle="--", linewidth=1, label="LCR (right)")
    ax2.set_ylabel("LCR", color="grey")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    ax.set_title(f"{Path(str(rep['model'])).name or 'model'} on {rep['task']}: low = redundant", fontsize=9)
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=path.parent if str(path.parent) else ".")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
