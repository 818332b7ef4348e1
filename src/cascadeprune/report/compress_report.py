"""The `compress` report: JSON (everything), Markdown (the table), PNG (the sawtooth).

Per stage: block parameters, compression ratio, accuracy right after pruning and after
recovery (the paper's sawtooth) on the test and the validation split, time and peak memory.
"""

from __future__ import annotations

import json
from pathlib import Path


def _pct(x) -> str:
    """A fraction as a percentage; '–' where a record has no such number (e.g. made before it was kept)."""
    return "–" if x is None else f"{100 * x:.2f} %"


def markdown(report: dict) -> str:
    d = report["dense"]
    lines = [
        f"# cascadeprune compress: {report['model']} on {report['task']}",
        "",
        f"Method **{report['method']}**, target ratio {report['ratio_target']:g}x, achieved "
        f"**{report['ratio_achieved']:.3f}x** on transformer-block parameters "
        f"({d['block_params']:,} -> {report['block_params']:,}). Seed {report['seed']}.",
        "",
        "| stage | granularity | block params | ratio | test accuracy after pruning | after recovery | "
        "validation accuracy after pruning | after recovery | recovery steps | wall s | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| dense | – | {d['block_params']:,} | 1.00x | {_pct(d['accuracy'])} | – | {_pct(d.get('val_accuracy'))} "
        "| – | – | – | – |",
    ]
    for s in report["stages"]:
        lines.append(
            f"| {s['stage']} | {s['granularity']} | {s['block_params']:,} | {s['ratio']:.2f}x | "
            f"{_pct(s['accuracy_pruned'])} | {_pct(s['accuracy_recovered'])} | {_pct(s.get('val_accuracy_pruned'))} "
            f"| {_pct(s.get('val_accuracy_recovered'))} | {s['recovery_steps']} | {s['wall_s']:.1f} "
            f"| {s['peak_rss_mb']} |")
    lines += ["", f"Final test accuracy {_pct(report['accuracy'])} (dense {_pct(d['accuracy'])}). "
              "Test is the task's held-out split (for a cross-load task, the load no model trained on); "
              "validation is the held-out part of the training data, which recovery also uses to keep its "
              "best state. Compression ratio = dense block parameters / pruned block parameters; embeddings, "
              "front end and head are reported in report.json."]
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = report["dense"]
    xs, ys, vals, labels = [1.0], [100 * d["accuracy"]], [d.get("val_accuracy")], ["dense"]
    for s in report["stages"]:
        xs += [s["ratio"], s["ratio"]]
        ys += [100 * s["accuracy_pruned"], 100 * s["accuracy_recovered"]]
        vals += [s.get("val_accuracy_pruned"), s.get("val_accuracy_recovered")]
        labels += [f"{s['granularity']} pruned", f"{s['granularity']} recovered"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(range(len(ys)), ys, marker="o", label="test")
    if all(v is not None for v in vals):
        ax.plot(range(len(vals)), [100 * v for v in vals], marker="s", linestyle="--", label="validation")
        ax.legend(fontsize=7)
    ax.set_xticks(range(len(ys)), [f"{l}\n{x:.1f}x" for l, x in zip(labels, xs)], fontsize=7, rotation=30)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{report['method']}: {report['ratio_achieved']:.2f}x")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(report: dict, out: str | Path) -> dict[str, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "markdown": out / "report.md", "plot": out / "report.png"}
    paths["json"].write_text(json.dumps(report, indent=2, default=str) + "\n")
    paths["markdown"].write_text(markdown(report))
    plot(report, paths["plot"])
    return paths
