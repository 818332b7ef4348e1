"""Summarise benchmarks/results/*.jsonl as Markdown tables (mean +- sd over seeds).

    python benchmarks/table.py benchmarks/results/dense.jsonl

Groups records by (protocol, model, method, ratio_target, test_snr_db); when a group was run
more than once for the same seed, the newest record wins.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict


def summarise(path: str) -> str:
    latest: dict[tuple, dict] = {}
    for line in open(path):
        r = json.loads(line)
        key = (r["protocol"], r["model"], r["method"], r.get("ratio_target", 1.0), r.get("test_snr_db"), r["seed"])
        latest[key] = r  # later lines are newer
    groups = defaultdict(list)
    for (protocol, model, method, ratio, snr, _), r in latest.items():
        groups[(protocol, model, method, ratio, snr)].append(r)
    lines = ["| protocol | model | method | ratio | test noise | accuracy % (mean ± sd) | macro-F1 % | seeds | "
             "block params | train wall s | peak RSS MB |", "|" + "---|" * 11]
    for (protocol, model, method, ratio, snr), rs in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        acc = [100 * r["accuracy"] for r in rs]
        f1 = [100 * r["macro_f1"] for r in rs]
        sd = lambda v: f" ± {statistics.stdev(v):.2f}" if len(v) > 1 else ""  # noqa: E731
        achieved = statistics.mean(r.get("ratio_achieved", ratio) for r in rs)
        lines.append(
            f"| {protocol} | {model} | {method} | {achieved:.2f}× | {'clean' if snr is None else f'{snr:g} dB'} | "
            f"{statistics.mean(acc):.2f}{sd(acc)} | {statistics.mean(f1):.2f}{sd(f1)} | "
            f"{','.join(str(r['seed']) for r in sorted(rs, key=lambda r: r['seed']))} | {rs[0]['block_params']:,} | "
            f"{statistics.mean(r['wall_s'] for r in rs):.0f} | {max(r['peak_rss_mb'] for r in rs)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(summarise(p))
