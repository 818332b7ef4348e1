"""The SIA table (issue 19): per architecture, the static verdict, the measured SIA statistics and verdict per
granularity, and what naive and group-aware pruning at 2x actually did; then whether either verdict predicted it.

It reads two kinds of records in benchmarks/results/sia.jsonl and runs nothing:

- ``benchmark: "sia"`` (benchmarks/sia.py: `cascadeprune sia` on the raw-front-end classifiers of seed 42 at the
  cuts of the 2x runs, and on SmolLM2-135M as a causal LM). The check is the one `cascadeprune sia` runs by
  default (criterion ``wanda_sp``, grouped); a granularity that was not measured shows "–";
- ``benchmark: "sia-collapse"`` (benchmarks/sia_collapse.py: heads + channels to 2x, no recovery and with one
  LoRA budget per model, seeds 42 / 123 / 456).

Definitions (fixed before the numbers were read):

- *naive*: ``l1`` in ``naive`` mode (each query head and each projection's channel scored alone: the paper's
  collapsing per-component L1);
- *group-aware*: of the grouped criteria (``l1``, ``taylor``, ``wanda_sp``), the one with the best mean
  **validation** metric after recovery over the model's seeds (never the test split);
- *best way*: the same choice over every run of the model except naive without a remedy (grouped criteria and
  the remedies of sia_collapse.py: channels first, iterative, uniform allocation, channels only);
- *collapse*: naive without recovery loses more than 30 pp of test accuracy (the issue's threshold), or for the
  causal LM its test perplexity is more than 10x dense;
- *under target*: where naive collapses, the best way without recovery (the collapse's own zero budget; chosen
  on validation among every run of the model without recovery but naive) loses under 10 pp (mean over seeds); the
  best way after LoRA is shown beside it;
- a verdict *predicts* a collapse when it says "violated": the static one (shared KV heads or a gated FFN), the
  measured one for any granularity. A classifier's measured verdict per granularity is the majority over its three
  seeds (each an independently trained model; sia.py's ``-s123`` / ``-s456`` runs; a tie goes to the more severe);
  seed 42's alone, the only one measured at first, is scored beside it, and so is each trained model on its own
  (a classifier seed's verdict against that seed's naive drop). SmolLM2 is one pretrained model: its one
  measurement serves every pruning seed.

    python -m benchmarks.sia_verdicts            # the tables, paired t-tests (scipy) and the prediction check
    python -m benchmarks.sia_verdicts --record   # and append one record per (model, granularity, seed)

``--record`` appends ``benchmark: "sia-verdict"`` records to sia.jsonl with model, granularity, static_verdict,
verdict, the statistics, drop_naive_pp / drop_grouped_pp (classifiers) or ppl_ratio_naive / ppl_ratio_grouped
(LM), each without recovery, before the last LoRA recovery and after it, the chosen criteria, seed, date, commit.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

from benchmarks._common import (append_records, commit_and_dirty, geo_mean_sd, load_records, mean_sd, newest,
                                utc_now)
from benchmarks.sia_collapse import MODELS, RESULTS, SEEDS, STATIC, kind, latest_runs

GRANULARITIES = ("heads", "channels")
CHECK = ("wanda_sp", "grouped")  # what `cascadeprune sia` runs by default on heads and channels
NAIVE = ("l1", "naive")
GROUPED = (("l1", "grouped"), ("taylor", "grouped"), ("wanda_sp", "grouped"))
COLLAPSE_PP, COLLAPSE_PPL = 30.0, 10.0
ARCH = {"gpt2-10m": "MHA + GELU", "gqa-gelu-10m": "GQA + GELU", "mha-swiglu-10m": "MHA + SwiGLU",
        "llama-10m": "GQA + SwiGLU", "all-minilm-l6-v2": "MHA + GELU, pretrained",
        "smollm2-135m-cwru": "GQA + SwiGLU, pretrained (classifier)", "smollm2-135m":
        "GQA + SwiGLU, pretrained (LM)"}


def sia_run(model: str, g: str, seed: int | None = None) -> str:
    """benchmarks/sia.py's run name: SmolLM2 is one pretrained model (its seeds are pruning seeds), a classifier
    seed is its own trained model (seed 42's runs carry no suffix)."""
    if model == "smollm2-135m":
        return f"smollm2-{g}"
    return f"{model}-raw-{g}" + ("" if seed in (None, 42) else f"-s{seed}")


def measurements(recs: list[dict]) -> dict:
    """(model, granularity, seed) -> the newest `sia` record of the default check (seed None for the LM: one
    measurement of the one pretrained model serves every pruning seed)."""
    names = {sia_run(m, g, s): (m, g, None if is_lm(m) else s)
             for m in MODELS for g in GRANULARITIES for s in SEEDS}
    out = {}
    for r in recs:
        if r.get("benchmark") == "sia" and (r["criterion"], r["mode"]) == CHECK and r["run"] in names:
            out[names[r["run"]]] = r
    return out


def measured(meas: dict, model: str, g: str, seed: int | None = 42) -> dict | None:
    return meas.get((model, g, None if is_lm(model) else seed))


def majority(verdicts: list[str]) -> str | None:
    """The verdict most seeds gave; a tie goes to the more severe (violated > weak > holds)."""
    if not verdicts:
        return None
    order = {"violated": 2, "weak": 1, "holds": 0}
    return max(set(verdicts), key=lambda v: (verdicts.count(v), order.get(v, -1)))


def stats_of(rec: dict | None) -> dict:
    if rec is None:
        return {"verdict": None}
    r = rec["result"]
    sets = [r["sets"]["criterion"]] + list(r["sets"]["random"]) if r["sets"]["criterion"] else []
    graded = [float(s["A"]) for s in sets if s.get("determined", True) and isinstance(s["A"], (int, float))]
    gr = r.get("gradient") or {}
    crit_grad = next((x["A_grad"] for x in gr.get("sets", []) if x["set"] == "criterion"), None)
    return {"verdict": r["verdict"], "static_granularity": r["static"]["verdict"],
            "A_abs_dev_median": statistics.median(abs(a - 1) for a in graded) if graded else None,
            "A_graded": len(graded), "A_sets": len(sets),
            "interaction_within": r["pairs"]["within"].get("median"),
            "interaction_across": r["pairs"]["across"].get("median"),
            "tau_noise": r["rank"].get("tau_halves"), "tau_after": r["rank"].get("tau_rescore"),
            "A_grad_criterion": crit_grad, "gradient_tau_pairs": gr.get("tau_pairs_vs_exact"),
            "sia_ratio": rec["ratio"], "sia_seed": rec["seed"], "sia_command": rec["command"]}


def is_lm(model: str) -> bool:
    return kind(model) == "lm"  # sia_collapse's own rule


def metric(r: dict, when: str) -> float:
    """drop_pp or ppl_ratio: 'final' (after the run's recovery, if any) or 'before' (before the last recovery)."""
    key = "ppl_ratio" if "ppl_ratio" in r else "drop_pp"
    return r[key] if when == "final" else r[key + "_before_recovery"]


def val_score(r: dict) -> float:
    """Higher is better: validation accuracy, or minus the log validation perplexity, after the last stage."""
    last = r["stages"][-1]
    if "val_accuracy_recovered" in last:
        return last["val_accuracy_recovered"]
    return -math.log(last["val_perplexity_recovered"])


def choose(runs: dict, model: str, keys: list[tuple], recoveries=("lora", "none")) -> tuple | None:
    """Of (criterion, mode, remedy) keys, the best mean validation score after LoRA recovery over the seeds
    that have it (without recovery where no LoRA run exists; ``recoveries=("none",)``: without recovery only)."""
    best, best_v = None, -math.inf
    for recovery in recoveries:
        for k in keys:
            xs = [val_score(r) for (m, c, mo, re, rc, _), r in runs.items() if m == model and (c, mo, re) == k
                  and rc == recovery]
            if xs and statistics.mean(xs) > best_v:
                best, best_v = k, statistics.mean(xs)
        if best is not None:
            return best
    return None


def outcome(runs: dict, model: str, key: tuple) -> dict:
    """seed -> {none, before, after} for (criterion, mode, remedy)."""
    out: dict = {}
    for (m, c, mo, re, rc, seed), r in runs.items():
        if m == model and (c, mo, re) == key:
            d = out.setdefault(seed, {})
            if rc == "none":
                d["none"] = metric(r, "final")
            else:
                d["before"], d["after"], d["recovery_steps"] = metric(r, "before"), metric(r, "final"), \
                    r["recovery_steps"]
    return out


def agg(model: str, xs: list[float]) -> str:
    if not xs:
        return "–"
    if is_lm(model):
        g, gsd = geo_mean_sd(xs)
        return f"×{g:.3g}" + (f" (×/÷ {gsd:.2g})" if gsd is not None else "")
    return mean_sd(xs, digits=1)


def summarise(recs: list[dict]) -> list[dict]:
    """One row per model: the measured statistics per granularity and the 2x outcomes over seeds."""
    meas, runs = measurements(recs), latest_runs(recs)
    rows = []
    for model in MODELS:
        if not any(k[0] == model for k in runs) and not any(k[0] == model for k in meas):
            continue
        grouped = choose(runs, model, [(c, mo, "none") for c, mo in GROUPED])
        others = sorted({(c, mo, re) for (m, c, mo, re, _, _) in runs if m == model} - {NAIVE + ("none",)})
        best = choose(runs, model, others)
        per_seed = {g: {seed: stats_of(measured(meas, model, g, seed)) for seed in ((42,) if is_lm(model) else SEEDS)}
                    for g in GRANULARITIES}
        rows.append({"model": model, "static": STATIC[model],
                     "stats": {g: per_seed[g][42] for g in GRANULARITIES},
                     "seed_stats": per_seed,
                     "verdicts": {g: {sd: st["verdict"] for sd, st in per_seed[g].items() if st["verdict"]}
                                  for g in GRANULARITIES},
                     "naive": outcome(runs, model, NAIVE + ("none",)),
                     "grouped_key": grouped, "grouped": outcome(runs, model, grouped) if grouped else {},
                     "best_key": best, "best": outcome(runs, model, best) if best else {},
                     "best_none_key": (bn := choose(runs, model, others, ("none",))),
                     "best_none": outcome(runs, model, bn) if bn else {}})
    return rows


def _col(model: str, out: dict, when: str) -> str:
    return agg(model, [d[when] for d in out.values() if d.get(when) is not None])  # auto: no "before" value


def _name(key) -> str:
    if key is None:
        return "–"
    c, mo, re = key
    return f"{c} ({mo})" + ("" if re == "none" else f", {re}")


def _t(x, fmt=".2f") -> str:
    return "–" if x is None else format(x, fmt)


def collapsed(row: dict) -> bool | None:
    xs = [d["none"] for d in row["naive"].values() if "none" in d]
    if not xs:
        return None
    m = statistics.mean(xs) if not is_lm(row["model"]) else math.exp(statistics.mean(math.log(x) for x in xs))
    return m > (COLLAPSE_PPL if is_lm(row["model"]) else COLLAPSE_PP)


def model_verdict(row: dict, g: str, seed42_only: bool = False) -> str | None:
    """A granularity's measured verdict for the architecture: the majority over its measured seeds (each classifier
    seed is its own trained model), or seed 42's alone."""
    v = row["verdicts"][g]
    return v.get(42) if seed42_only else majority(list(v.values()))


def table(rows: list[dict]) -> str:
    head = ("| model (architecture) | static SIA | granularity | measured on seed 42: median abs(A − 1) "
            "(graded / sets) | interaction within / across | τ noise floor → after half the cut | "
            "A est. from gradients | verdict per seed (42 / 123 / 456) | verdict (majority) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for row in rows:
        for g in GRANULARITIES:
            s = row["stats"][g]
            per = " / ".join(row["verdicts"][g].get(sd, "–") for sd in sorted(row["seed_stats"][g]))
            if s["verdict"] is None:
                lines.append(f"| {row['model']} ({ARCH[row['model']]}) | {row['static']} | {g} | – | – | – | – | "
                             f"{per} | {model_verdict(row, g) or 'not measured'} |")
                continue
            lines.append(
                f"| {row['model']} ({ARCH[row['model']]}) | {row['static']} | {g} | "
                f"{_t(s['A_abs_dev_median'])} ({s['A_graded']} / {s['A_sets']}) | "
                f"{_t(s['interaction_within'])} / {_t(s['interaction_across'])} | "
                f"{_t(s['tau_noise'])} → {_t(s['tau_after'])} | {_t(s['A_grad_criterion'])} | {per} | "
                f"**{model_verdict(row, g)}** |")
    head2 = ("| model | seeds | naive `l1`: no recovery | before last LoRA | after LoRA | group-aware (chosen on val) "
             "| no recovery | after LoRA | best way found (chosen on val) | no recovery | after LoRA | LoRA steps |")
    lines += ["", head2, "|" + "---|" * (head2.count("|") - 1)]
    for row in rows:
        m = row["model"]
        seeds = sorted(set(row["naive"]) | set(row["grouped"]))
        steps = sorted({d.get("recovery_steps") for d in row["naive"].values() if "recovery_steps" in d})
        lines.append(
            f"| {m} | {', '.join(map(str, seeds))} | {_col(m, row['naive'], 'none')} | {_col(m, row['naive'], 'before')} | "
            f"{_col(m, row['naive'], 'after')} | {_name(row['grouped_key'])} | {_col(m, row['grouped'], 'none')} | "
            f"{_col(m, row['grouped'], 'after')} | {_name(row['best_key'])} | {_col(m, row['best'], 'none')} | "
            f"{_col(m, row['best'], 'after')} | {'/'.join(map(str, steps)) or '–'} |")
    lines.append("\nClassifiers: test accuracy drop in pp (dense − pruned), mean ± sd over seeds; SmolLM2: test "
                 "perplexity / dense, geometric mean (×/÷ geometric sd).")
    lines += ["", *paired_tests(rows)]
    head3 = ("| model | naive collapses? | static predicts | measured verdict (majority) predicts | "
             "seed 42's verdict alone predicts | best way under target? |")
    lines += ["", head3, "|" + "---|" * (head3.count("|") - 1)]
    hits = {"static": [], "measured (majority over seeds)": [], "measured (seed 42 alone)": []}
    for row in rows:
        c = collapsed(row)
        st = "violated" in row["static"]
        preds = []
        for only42, label in ((False, "measured (majority over seeds)"), (True, "measured (seed 42 alone)")):
            verdicts = [v for v in (model_verdict(row, g, only42) for g in GRANULARITIES) if v]
            me = ("violated" in verdicts) if verdicts else None
            if c is not None and me is not None:
                hits[label].append(me == c)
            preds.append(me)
        if c is not None:
            hits["static"].append(st == c)
        target = "–"
        if c and not is_lm(row["model"]):
            # the same budget as the collapse: none (the best way without recovery, chosen on validation); the
            # best way after LoRA beside it
            none = [d["none"] for d in row["best_none"].values() if "none" in d]
            after = [d["after"] for d in row["best"].values() if "after" in d]
            target = (f"{'yes' if none and statistics.mean(none) < 10 else 'no'} ({_name(row['best_none_key'])} "
                      f"without recovery: {agg(row['model'], none)} pp"
                      + (f"; best way after LoRA {agg(row['model'], after)} pp" if after else "") + ")")
        elif c:
            target = f"n/a for perplexity (best {agg(row['model'], [d['after'] for d in row['best'].values() if 'after' in d])})"
        say = lambda p: "–" if p is None or c is None else f"{'collapse' if p else 'no collapse'} ({'right' if p == c else 'wrong'})"  # noqa: E731
        lines.append(f"| {row['model']} | {'–' if c is None else ('yes' if c else 'no')} | {say(st)} | "
                     f"{say(preds[0])} | {say(preds[1])} | {target} |")
    for k, v in hits.items():
        lines.append(f"\n{k} verdict right on {sum(v)} of {len(v)} models" if v else f"\n{k} verdict: nothing to score")
    right, wrong = per_model_instance(rows)
    if right or wrong:
        lines.append(f"\nper trained model (each classifier seed is its own model; its own verdict against its own "
                     f"naive drop): right on {len(right)} of {len(right) + len(wrong)}"
                     + (f"; wrong on {', '.join(wrong)}" if wrong else ""))
    return "\n".join(lines)


def paired_tests(rows: list[dict]) -> list[str]:
    """Best way against naive L1 and against the group-aware criterion, after LoRA and (where both exist) without
    recovery, paired over the seeds both have: scipy.stats.ttest_rel on the drop (pp) or log perplexity ratio."""
    from scipy import stats as sst

    head = "| model | comparison | when | seeds | mean difference | p (paired t) |"
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for row in rows:
        m, lm = row["model"], is_lm(row["model"])
        f = math.log if lm else float  # perplexity ratios are compared on the log scale
        for label, other, okey in (("naive `l1`", row["naive"], NAIVE + ("none",)),
                                   ("group-aware", row["grouped"], row["grouped_key"])):
            if row["best_key"] is None or okey == row["best_key"]:
                continue
            for when in ("none", "after"):
                seeds = sorted(sd for sd in row["best"] if when in row["best"][sd] and when in other.get(sd, {}))
                if len(seeds) < 2:
                    continue
                a = [f(row["best"][sd][when]) for sd in seeds]
                b = [f(other[sd][when]) for sd in seeds]
                diff = statistics.mean(x - y for x, y in zip(a, b))
                p = sst.ttest_rel(a, b).pvalue
                shown = f"×{math.exp(diff):.3g} perplexity" if lm else f"{diff:+.1f} pp"
                out.append(f"| {m} | {_name(row['best_key'])} − {label} | "
                           f"{'no recovery' if when == 'none' else 'after LoRA'} | {', '.join(map(str, seeds))} | "
                           f"{shown} | {'–' if math.isnan(p) else f'{p:.3g}'} |")
    return out if len(out) > 2 else []


def per_model_instance(rows: list[dict]) -> tuple[list[str], list[str]]:
    """Each classifier seed's measured verdict (violated in any granularity) against that seed's own naive drop
    without recovery (> 30 pp); SmolLM2, one pretrained model, counts once with its mean. -> (right, wrong) names."""
    right, wrong = [], []
    for row in rows:
        m = row["model"]
        if is_lm(m):
            c = collapsed(row)
            vs = [v for v in (row["verdicts"][g].get(42) for g in GRANULARITIES) if v]
            if c is not None and vs:
                (right if ("violated" in vs) == c else wrong).append(m)
            continue
        for seed, d in sorted(row["naive"].items()):
            vs = [row["verdicts"][g][seed] for g in GRANULARITIES if seed in row["verdicts"][g]]
            if "none" in d and vs:
                (right if ("violated" in vs) == (d["none"] > COLLAPSE_PP) else wrong).append(f"{m} seed {seed}")
    return right, wrong


def records(rows: list[dict]) -> list[dict]:
    commit, date = commit_and_dirty()[0], utc_now()
    out = []
    for row in rows:
        lm = is_lm(row["model"])
        seeds = sorted(set(row["naive"]) | set(row["grouped"]))
        for g in GRANULARITIES:
            for seed in seeds:
                n, gr = row["naive"].get(seed, {}), row["grouped"].get(seed, {})
                key = "ppl_ratio" if lm else "drop_pp"
                rec = {"benchmark": "sia-verdict", "model": row["model"], "granularity": g,
                       "static_verdict": row["static"], **row["seed_stats"][g].get(seed, row["stats"][g]),
                       "verdict_majority": model_verdict(row, g), "seed": seed}
                for w, d in (("naive", n), ("grouped", gr)):
                    base = f"ppl_ratio_{w}" if lm else f"drop_{w}_pp"
                    rec |= {base: d.get("after"), f"{base}_no_recovery": d.get("none"),
                            f"{base}_before_recovery": d.get("before")}
                rec |= {"naive_criterion": _name(NAIVE + ("none",)), "grouped_criterion": _name(row["grouped_key"]),
                        "recovery_steps": n.get("recovery_steps"), "collapse": collapsed(row), "date": date,
                        "commit": commit, "command": "python -m benchmarks.sia_verdicts --record"}
                out.append(rec)
    return out


STAMP = ("date", "commit")


def new_records(recs: list[dict], existing: list[dict]) -> tuple[list[dict], int]:
    """The records that differ (beyond date and commit) from the newest sia-verdict record of the same model,
    granularity and seed, and how many did not: a re-run with nothing new appends nothing."""
    last = newest([r for r in existing if r.get("benchmark") == "sia-verdict"],
                  lambda r: (r["model"], r["granularity"], r["seed"]))
    strip = lambda r: {k: v for k, v in r.items() if k not in STAMP}  # noqa: E731
    out = [r for r in recs if (old := last.get((r["model"], r["granularity"], r["seed"]))) is None
           or json.loads(json.dumps(strip(old))) != json.loads(json.dumps(strip(r)))]
    return out, len(recs) - len(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--record", action="store_true", help="append the sia-verdict records to --results")
    args = ap.parse_args(argv)
    rows = summarise(load_records(args.results))
    print(table(rows))
    if args.record:
        recs, same = new_records(records(rows), load_records(args.results))
        append_records(args.results, recs)
        print(f"\nappended {len(recs)} records to {args.results} ({same} unchanged since the newest ones: not repeated)")


if __name__ == "__main__":
    main()
