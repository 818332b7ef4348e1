"""The `sia` report as files: ``sia.json`` (what ``cascadeprune sia --json`` prints), ``sia.md`` (a summary
table per granularity, then the full text report) and ``sia.png`` (each granularity's single-removal costs).

Works on the report's dict alone (no model), so ``inspect`` can read and summarise a stored report.
:func:`summary` gives the handful of statistics the issue's table and ``inspect`` show per granularity.

Example::

    write_files(rep, Path("out/sia"), text=format_report(rep))   # sia.json, sia.md, sia.png
    summary(rep)["heads"]["verdict"]
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

FILES = {"json": "sia.json", "markdown": "sia.md", "plot": "sia.png"}


def _num(x):
    """A number from the report's JSON (non-finite values are stored as "inf" / "-inf" / "nan" strings)."""
    if isinstance(x, str):
        return float(x)
    return x


def summary(rep: dict) -> dict[str, dict]:
    """Per granularity: empirical and static verdict, criterion, and the statistics that decide the verdict.

    ``additivity_criterion``: A of the criterion's set; ``additivity_median``: median A over the random sets
    whose Σδ is determined; ``interaction_within`` / ``_across``: median |I| / (|δi| + |δj|); ``tau_noise``:
    Kendall τ between calibration halves; ``tau_after``: τ after half the cut is removed (None when not
    measured or the criterion reads weights only)."""
    out = {}
    for g, r in rep["granularities"].items():
        c, rk = r["sets"]["criterion"], r["rank"]
        rand = [_num(x["A"]) for x in r["sets"]["random"] if x["A"] is not None and x["determined"]]
        out[g] = {
            "verdict": r["verdict"], "static": r["static"]["verdict"], "criterion": r["criterion"], "mode": r["mode"],
            "additivity_criterion": _num(c["A"]) if c is not None and c["determined"] else None,
            "additivity_median": statistics.median(rand) if rand else None,
            "interaction_within": r["pairs"]["within"].get("median"),
            "interaction_across": r["pairs"]["across"].get("median"),
            "within": r["within"],
            "tau_noise": rk.get("tau_halves"), "tau_after": None if rk["weight_only"] else rk.get("tau_rescore"),
            "advice": r["advice"],
        }
    return out


SUMMARY_KEYS = ("additivity_criterion", "additivity_median", "interaction_within", "interaction_across", "tau_noise",
                "tau_after")


def with_summary(rep: dict) -> dict:
    """The report with its headline numbers where a reader of ``sia --json`` looks first: ``static.verdict``
    (holds / violated) and, per granularity, the :func:`summary` statistics beside ``verdict``. Adds keys only."""
    rep["static"]["verdict"] = "holds" if rep["static"]["holds"] else "violated"
    for g, s in summary(rep).items():
        rep["granularities"][g].update({k: s[k] for k in SUMMARY_KEYS})
    return rep


def _f(x, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def markdown(rep: dict, text: str | None = None) -> str:
    st = rep["static"]
    cal = rep["calibration"]
    lines = [f"# cascadeprune sia: {rep['model']} on {rep['task']}", "",
             f"Static check: **{'holds' if st['holds'] else 'violated'}** (D = {st['group_size']}, "
             f"{'gated' if st['gated_ffn'] else 'ungated'} FFN). Measured on {cal['windows']} calibration windows "
             f"(seed {cal['seed']}{', mix ' + json.dumps(cal['mix']) if cal.get('mix') else ''}); removal = masking.",
             "", "| granularity | verdict (measured) | static | criterion | A criterion set | median A random sets | "
                 "median norm. abs(I) within | across | τ halves (noise floor) | τ after half the cut |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for g, s in summary(rep).items():
        lines.append(f"| {g} | **{s['verdict']}** | {s['static']} | {s['criterion']} ({s['mode']}) | "
                     f"{_f(s['additivity_criterion'])} | {_f(s['additivity_median'])} | "
                     f"{_f(s['interaction_within'], 3)} ({s['within']}) | {_f(s['interaction_across'], 3)} | "
                     f"{_f(s['tau_noise'])} | {_f(s['tau_after'])} |")
    lines += ["", "A = ΔL(set) / Σ single-removal δ (1: additive; ≫ 1: removals compound). Thresholds: "
              f"`{json.dumps(rep['thresholds'])}`.", ""]
    lines += [f"- **{g}**: {s['advice']}" for g, s in summary(rep).items()]
    if text:
        lines += ["", "## Full report", "", "```", text, "```"]
    return "\n".join(lines) + "\n"


def plot(rep: dict, path: Path) -> None:
    """One panel per granularity: the measured single-removal costs δ, largest first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grans = list(rep["granularities"])
    fig, axes = plt.subplots(1, len(grans), figsize=(4.2 * len(grans), 3.2), squeeze=False)
    for ax, g in zip(axes[0], grans):
        r = rep["granularities"][g]
        deltas = sorted((_num(d) for d in r["single"]["deltas"].values()), reverse=True)
        ax.bar(range(len(deltas)), deltas, width=1.0, color="tab:blue" if r["verdict"] == "holds" else
               "tab:orange" if r["verdict"] == "weak" else "tab:red")
        ax.axhline(0, color="grey", linewidth=0.6)
        ax.set_title(f"{g}: {r['verdict']} (static {r['static']['verdict']})", fontsize=9)
        ax.set_xlabel(f"{len(deltas)} measured units of {r['units_total']}, largest first", fontsize=8)
        ax.set_ylabel("δ = L(without unit) − L(full)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{Path(str(rep['model'])).name} on {rep['task']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_files(rep: dict, folder: Path, text: str | None = None) -> dict[str, Path]:
    """Write the three files into ``folder`` (which must exist); the caller makes the folder appear atomically."""
    paths = {k: folder / v for k, v in FILES.items()}
    paths["markdown"].write_text(markdown(rep, text))
    plot(rep, paths["plot"])
    paths["json"].write_text(json.dumps(rep, indent=2) + "\n")
    return paths
