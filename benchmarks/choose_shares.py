"""Choose the default budget split on VALIDATION, report test beside it, with a paired t-test from scipy.

Reads the share sweep in results/cascade.jsonl (methods ``cascade-shares-L-H-C``, the default 0.6/0.2/0.2
included as ``cascade-shares-0.6-0.2-0.2``, so every split comes from the same sweep; gpt2-10m, spectrum front
end, speed jitter 0.03, 13.8x, seeds 42/123/456; the newest record per seed). Ranks splits by
the mean over seeds of the last stage's validation accuracy after recovery (the training loads' held-out
windows), ties broken by the smaller spread; prints test beside it and a paired t-test (over seeds) of the
validation choice against the shipped default on test.

    python -m benchmarks.choose_shares
"""

from __future__ import annotations

import statistics as st
from collections import defaultdict

from scipy import stats

from benchmarks._common import RESULTS_DIR, load_records, paired

RESULTS = RESULTS_DIR / "cascade.jsonl"
DEFAULT = "0.6-0.2-0.2"


def sweep(model: str = "gpt2-10m", ratio: float = 13.8) -> dict[str, dict[int, tuple[float, float]]]:
    """split -> seed -> (validation accuracy, test accuracy) of the newest record."""
    out: dict[str, dict[int, tuple[float, float]]] = defaultdict(dict)
    for r in load_records(RESULTS):
        if (r["model"], r["ratio_target"], r.get("test_snr_db"), r.get("speed_jitter")) != (model, ratio, None, 0.03):
            continue
        if r.get("front_end") not in (None, "spectrum") or r.get("recovery", "lora") != "lora":
            continue
        m = r["method"]
        split = m.removeprefix("cascade-shares-") if m.startswith("cascade-shares-") else None
        val = r["stages"][-1].get("val_accuracy_recovered")
        if split is None or "-" in split.replace(".", "").replace("-", "", 2) or val is None:
            continue
        out[split][r["seed"]] = (val, r["accuracy"])
    return {k: v for k, v in out.items() if len(v) >= 3}


def main() -> None:
    rows = sweep()
    ranked = sorted(rows, key=lambda k: (-st.mean(v[0] for v in rows[k].values()),
                                         st.pstdev(v[0] for v in rows[k].values())))
    print("| split L/H/C | seeds | validation % (mean ± sd) | test % (mean ± sd) |\n|---|---|---|---|")
    for k in ranked:
        v = [x[0] * 100 for x in rows[k].values()]
        t = [x[1] * 100 for x in rows[k].values()]
        print(f"| {k.replace('-', '/')} | {len(v)} | {st.mean(v):.2f} ± {st.stdev(v):.2f} | "
              f"{st.mean(t):.2f} ± {st.stdev(t):.2f} |")
    best = ranked[0]
    ties = [k for k in ranked if st.mean(v[0] for v in rows[k].values()) == st.mean(v[0] for v in rows[best].values())]
    seeds, a, b = paired({s: v[1] for s, v in rows[best].items()}, {s: v[1] for s, v in rows[DEFAULT].items()})
    res = stats.ttest_rel(a, b) if a != b else None
    print(f"\nvalidation choice: {best.replace('-', '/')} (tied with {', '.join(t.replace('-', '/') for t in ties[1:]) or 'none'})"
          f"; shipped default {DEFAULT.replace('-', '/')} ranks {ranked.index(DEFAULT) + 1} of {len(ranked)} on validation")
    if res is not None:
        print(f"test, choice vs default, paired over seeds {seeds}: mean diff {100 * st.mean(x - y for x, y in zip(a, b)):+.2f} pp, "
              f"t = {res.statistic:.2f}, p = {res.pvalue:.3f}")


if __name__ == "__main__":
    main()
