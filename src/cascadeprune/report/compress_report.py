"""The `compress` report: JSON (everything), Markdown (the table), PNG (the sawtooth).

Per stage: block parameters, compression ratio, the task's primary metric (``report["metric"]``:
accuracy for the bearing task, perplexity for the LM task) right after pruning and after recovery
(the paper's sawtooth) on the test and the validation split, time and peak memory. Per-domain
perplexities of an LM run are in the JSON (``test_recovered``) and listed under the table.
"""

from __future__ import annotations

import json
from pathlib import Path


def _fmt(metric: str):
    """Accuracy as a percentage, anything else (perplexity) as a number; '–' where a record has none."""
    if metric == "accuracy":
        return lambda x: "–" if x is None else f"{100 * x:.2f} %"
    return lambda x: "–" if x is None else f"{x:.4g}"


def markdown(report: dict) -> str:
    d, m = report["dense"], report.get("metric", "accuracy")
    f = _fmt(m)
    lines = [
        f"# cascadeprune compress: {report['model']} on {report['task']}",
        "",
        f"Method **{report['method']}**, target ratio {report['ratio_target']:g}x, achieved "
        f"**{report['ratio_achieved']:.3f}x** on transformer-block parameters "
        f"({d['block_params']:,} -> {report['block_params']:,}). Seed {report['seed']}.",
        "",
        f"| stage | granularity | block params | ratio | test {m} after pruning | after recovery | "
        f"validation {m} after pruning | after recovery | recovery steps | wall s | peak RSS MB (stage / process) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| dense | – | {d['block_params']:,} | 1.00x | {f(d[m])} | – | {f(d.get(f'val_{m}'))} | – | – | – | – |",
    ]
    skipped = []
    for s in report["stages"]:
        if s.get("skipped"):
            skipped.append(f"stage {s['stage']} ({s['granularity']}) was skipped: {s['skipped']}")
            lines.append(f"| {s['stage']} | {s['granularity']} (skipped) | {s['block_params']:,} | {s['ratio']:.2f}x "
                         f"| – | – | – | – | 0 | {s['wall_s']:.1f} | – |")
            continue
        lines.append(
            f"| {s['stage']} | {s['granularity']} | {s['block_params']:,} | {s['ratio']:.2f}x | "
            f"{f(s[f'{m}_pruned'])} | {f(s[f'{m}_recovered'])} | {f(s.get(f'val_{m}_pruned'))} "
            f"| {f(s.get(f'val_{m}_recovered'))} | {s['recovery_steps']} | {s['wall_s']:.1f} "
            f"| {s['peak_rss_mb']} / {s.get('process_peak_rss_mb', '–')} |")
    if skipped:
        lines += [""] + [f"- {x}; it removed nothing, so no recovery was spent." for x in skipped]
    lines += ["", f"Final test {m} {f(report[m])} (dense {f(d[m])}). "
              "Test is the task's held-out split (for a cross-load task, the load no model trained on; for an LM, "
              "the corpus's test blocks); validation is a held-out part of the training data, which recovery also "
              "uses to keep its best state. Compression ratio = dense block parameters / pruned block parameters; "
              "embeddings, front end and head are reported in report.json."]
    if report.get("auto"):
        lines += ["", auto_markdown(report["auto"])]
    per = report.get("test", {}).get("perplexity_per_domain")
    if per:
        dense_per = d.get("test", {}).get("perplexity_per_domain", {})
        lines += ["", "Test perplexity per domain (dense -> compressed): " + ", ".join(
            f"{k} {dense_per.get(k, float('nan')):.4g} -> {v:.4g}" for k, v in per.items())]
    return "\n".join(lines) + "\n"


def auto_summary(log: dict) -> str:
    """The few lines ``compress`` prints for method auto: what it chose and why."""
    lines = [log["summary"]]
    for d in log["decisions"]:
        lines.append(f"- {d['decision']}: {d['chosen']} — {d['why']}")
    return "\n".join(lines)


def auto_markdown(log: dict) -> str:
    """The decision log of method auto: every decision with its reason, then every candidate (validation only)."""
    f = _fmt(log["metric"])
    out = ["## Decision log (method auto; every score is on the validation split)", "", auto_summary(log), ""]
    if log.get("max_loss"):
        ml = log["max_loss"]
        out += [f"Max-loss walk (tolerance {ml['tolerance']:g} {ml['unit']}, dense {f(ml['dense_val'])}):", "",
                "| ratio | validation | loss | within |", "|---|---|---|---|"]
        out += [f"| {c['ratio']:g}x | {f(c['val'])} | {'–' if c.get('loss') is None else format(c['loss'], '.4g')} "
                f"| {'yes' if c['within'] else 'no'} |" for c in ml["curve"]]
        out.append("")
    out += ["| # | phase | candidate | ratio | validation | wall s |", "|---|---|---|---|---|---|"]
    for c in log["candidates"]:
        what = {k: v for k, v in c.items() if k not in ("id", "phase", "val", "score", "ratio", "wall_s")}
        out.append(f"| {c['id']} | {c['phase']} | {json.dumps(what, separators=(',', ':'))} | {c['ratio']:.3f}x "
                   f"| {f(c['val'])} | {c['wall_s']:.1f} |")
    b = log["budget"]
    out += ["", f"Budget {b['spec']} ({b['kind']}): {b['evaluations_used']} evaluations in {b['search_s']:.0f} s of "
            f"search; total {log['wall_s']['total']:.0f} s."]
    return "\n".join(out)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d, m = report["dense"], report.get("metric", "accuracy")
    scale = 100 if m == "accuracy" else 1
    xs, ys, vals, labels = [1.0], [scale * d[m]], [d.get(f"val_{m}")], ["dense"]
    for s in report["stages"]:
        if s.get("skipped"):
            continue
        if s[f"{m}_pruned"] is not None:  # method auto reports only the final model
            xs.append(s["ratio"])
            ys.append(scale * s[f"{m}_pruned"])
            vals.append(s.get(f"val_{m}_pruned"))
            labels.append(f"{s['granularity']} pruned")
        xs.append(s["ratio"])
        ys.append(scale * s[f"{m}_recovered"])
        vals.append(s.get(f"val_{m}_recovered"))
        labels.append(f"{s['granularity']} recovered")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(range(len(ys)), ys, marker="o", label="test")
    if all(v is not None for v in vals):
        ax.plot(range(len(vals)), [scale * v for v in vals], marker="s", linestyle="--", label="validation")
        ax.legend(fontsize=7)
    if m != "accuracy":
        ax.set_yscale("log")
    ax.set_xticks(range(len(ys)), [f"{l}\n{x:.1f}x" for l, x in zip(labels, xs)], fontsize=7, rotation=30)
    ax.set_ylabel("accuracy (%)" if m == "accuracy" else m)
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


def format_plan(plan: dict) -> str:
    """The dry run's table: what each stage of the run will cut and the recovery it will spend."""
    lines = [f"plan: method {plan['method']}, target ratio {plan['ratio_target']:g}x on block parameters "
             f"({plan['block_params_before']:,} -> {plan['target_block_params']:,}); this plan reaches at most "
             f"{plan['max_ratio']:.2f}x",
             "",
             f"{'stage':<5}  {'granularity':<14} {'criterion':<12} {'steps':>5}  {'removes':>12}  "
             f"{'block params':>12}  {'ratio':>8}  recovery"]
    for r in plan["stages"]:
        rec = r["recovery"]
        if r["skipped"]:
            what = f"none (skipped: {r['skipped']})"
        elif rec["method"] == "none":
            what = "none"
        elif rec["steps"] is not None:
            what = f"{rec['method']}, {rec['steps']} steps"
        else:
            what = f"{rec['method']}, {rec['epochs']:g} epochs"
        approx = "" if r["exact"] else "~"
        lines.append(f"{r['stage']:<5}  {r['granularity']:<14} {r['criterion'] or '-':<12} {r['steps']:>5}  "
                     f"{approx + format(r['remove_params'], ','):>12}  {approx + format(r['block_params_after'], ','):>12}"
                     f"  {r['ratio_after']:>7.2f}x  {what}")
    if not all(r["exact"] for r in plan["stages"]):
        lines += ["", "~ depends on the scores (a GQA heads cut takes whole KV groups or one head per group, whichever "
                      "scores lower; FLAP ranks heads and channels together), so the cut can differ from the plan by "
                      "less than one unit; the next stage takes the difference back and the run ends on the target"]
    return "\n".join(lines)
