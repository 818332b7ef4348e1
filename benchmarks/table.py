"""Summarise benchmarks/results/*.jsonl as Markdown tables (mean +- sd over seeds).

    python -m benchmarks.table benchmarks/results/dense.jsonl
    python -m benchmarks.table benchmarks/results/cascade.jsonl --speed-jitter 0.03 --methods cascade oneshot
    python -m benchmarks.table benchmarks/results/cascade.jsonl --pivot --methods cascade oneshot --speed-jitter 0.03 \
        --model gpt2-10m --protocol cwru-4class-crossload [--front-end raw] [--paired] [--split val]

Groups records by (protocol, model and its front end, method, ratio_target, test_snr_db, speed_jitter, total
recovery steps, budget shares); when a group was run more than once for the same seed, the newest record wins.
Compression records also show the mean accuracy of the dense models they started from.
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict

from benchmarks._common import load_records, md_head, md_row, mean_sd, newest, paired_cell
from cascadeprune.methods.cascade import RATIO_TOLERANCE

# Records written before they carried "shares" used the default split of their day: 0.3/0.2/0.5
# until the measured sweep replaced it with 0.6/0.2/0.2 (methods/config.py) at this time.
_SPLIT_CHANGED = "2026-11-22T18:27"


_STAGES = ("layers", "heads", "channels")


def _shares(r: dict) -> str:
    """The budget split L/H/C a compression record used."""
    if "shares" in r:
        sh = r["shares"]
    elif r.get("benchmark") != "cascade":
        return ""
    elif r["method"].startswith("cascade-shares-"):
        sh = dict(zip(_STAGES, map(float, r["method"].split("-")[2:5])))
    else:
        sh = dict(zip(_STAGES, (0.3, 0.2, 0.5) if r["date"] < _SPLIT_CHANGED else (0.6, 0.2, 0.2)))
    return "/".join(f"{sh[g]:g}" for g in _STAGES if g in sh)


def _front_end(r: dict) -> str:
    """The vibration front end of the dense model a record comes from (benchmarks/dense.py FRONT_ENDS)."""
    return r.get("front_end", "spectrum")


def _recovery_steps(r: dict) -> int:
    """Recovery steps the run actually took (its stages' record), else its budget."""
    if r.get("stages"):
        return sum(st.get("recovery_steps", 0) for st in r["stages"])
    return sum(r.get("recovery_steps", {}).values())


def _records(path: str, methods: list[str] | None = None, speed_jitter: float | None = None,
             ratios: list[float] | None = None, model: str | None = None,
             protocol: str | None = None, budget: int | None = None, shares: str | None = None,
             front_end: str | None = None, seeds: list[int] | None = None):
    """The records of a results file that pass every filter given, oldest first."""
    for r in load_records(path):
        if ((methods and r["method"] not in methods) or (model and r["model"] != model)
                or (protocol and r["protocol"] != protocol)
                or (speed_jitter is not None and r.get("speed_jitter", 0.0) != speed_jitter)
                or (ratios and r.get("ratio_target", 1.0) not in ratios)
                or (budget is not None and sum(r.get("recovery_steps", {}).values()) != budget)
                or (shares and _shares(r) != shares) or (front_end and _front_end(r) != front_end)
                or (seeds and r["seed"] not in seeds)):
            continue
        yield r


def summarise(path: str, methods: list[str] | None = None, speed_jitter: float | None = None,
              ratios: list[float] | None = None, front_end: str | None = None) -> str:
    def key(r: dict) -> tuple:
        tags = [t for t in (_front_end(r), r.get("device", "cpu")) if t not in ("spectrum", "cpu")]
        model = r["model"] + (f" ({', '.join(tags)})" if tags else "")  # a GPU run is a separate row
        return (r["protocol"], model, r["method"], r.get("ratio_target", 1.0), r.get("test_snr_db"),
                r.get("speed_jitter", 0.0), _recovery_steps(r), _shares(r), r["seed"])

    latest = newest(_records(path, methods, speed_jitter, ratios, front_end=front_end), key)
    groups = defaultdict(list)
    for key, r in latest.items():
        groups[key[:-1]].append(r)
    compression = any("dense_accuracy" in r for r in latest.values())
    head = ["protocol", "model", "method", "ratio", "test noise", "accuracy % (mean ± sd)", "macro-F1 %"]
    head += ["dense start %", "speed jitter", "recovery steps", "shares L/H/C"] if compression else []
    head += ["seeds", "block params", "wall s", "peak RSS MB"]
    lines = md_head(head)
    order = lambda kv: (*kv[0][:2], float(kv[0][3]), kv[0][2], *map(str, kv[0][4:]))  # noqa: E731
    for (protocol, model, method, ratio, snr, sj, steps, shares), rs in sorted(groups.items(), key=order):
        acc = [100 * r["accuracy"] for r in rs]
        f1 = [100 * r["macro_f1"] for r in rs]
        achieved = statistics.mean(r.get("ratio_achieved", ratio) for r in rs)
        row = [protocol, model, method, f"{achieved:.2f}×", "clean" if snr is None else f"{snr:g} dB",
               mean_sd(acc), mean_sd(f1)]
        if compression:
            dense = [100 * r["dense_accuracy"] for r in rs if "dense_accuracy" in r]
            row += [f"{statistics.mean(dense):.2f}" if dense else "", f"{sj:g}", str(steps), shares or "–"]
        row += [",".join(str(r["seed"]) for r in sorted(rs, key=lambda r: r["seed"])), f"{rs[0]['block_params']:,}",
                f"{statistics.mean(r['wall_s'] for r in rs):.0f}", str(max(r["peak_rss_mb"] for r in rs))]
        lines.append(md_row(row))
    return "\n".join(lines)


def accuracy(r: dict, split: str = "test") -> float:
    """A compression record's final accuracy on ``split``: ``test`` (for cross-load protocols the unseen load)
    or ``val`` (the training loads' held-out windows; the last stage's ``val_accuracy_recovered``)."""
    if split == "test":
        return r["accuracy"]
    if not r.get("stages") or "val_accuracy_recovered" not in r["stages"][-1]:
        raise SystemExit(f"a {r['method']} record (seed {r['seed']}, {r['date']}) has no validation accuracy; "
                         "filter it out (e.g. --seeds) or use --split test")
    return r["stages"][-1]["val_accuracy_recovered"]


def latest_records(path: str, methods: list[str], speed_jitter: float | None = None,
                   ratios: list[float] | None = None, model: str | None = None, protocol: str | None = None,
                   steps: int | None = None, shares: str | None = None, front_end: str = "spectrum",
                   seeds: list[int] | None = None, snr_db: float | None = None) -> dict[tuple, dict]:
    """(ratio_target, method, seed) -> the newest record passing the filters; they must come from one setup.

    ``snr_db``: records scored with white noise at this SNR on the test windows (None: the clean ones)."""
    latest: dict[tuple, dict] = {}
    setups: set[tuple[str, str]] = set()
    for r in _records(path, methods, speed_jitter, ratios, model=model, protocol=protocol, budget=steps,
                      shares=shares, front_end=front_end, seeds=seeds):
        if r.get("test_snr_db") != snr_db:
            continue
        latest[(r["ratio_target"], r["method"], r["seed"])] = r  # later lines are newer
        setups.add((r["model"], r["protocol"]))
    if len(setups) > 1:
        raise SystemExit(f"{path}: the records that pass the filters come from several setups "
                         f"{sorted(setups)}; choose one with --model / --protocol")
    return latest


def paired_differences(latest: dict[tuple, dict], first: str, second: str, ratio: float,
                       split: str = "test") -> list[float]:
    """``first`` minus ``second`` in pp, seed by seed (same dense model), over the seeds both have."""
    a, b = ({s: accuracy(r, split) for (q, m, s), r in latest.items() if q == ratio and m == name}
            for name in (first, second))
    return [100 * (a[s] - b[s]) for s in sorted(set(a) & set(b))]


def pivot(path: str, methods: list[str], speed_jitter: float | None = None, ratios: list[float] | None = None,
          model: str | None = None, protocol: str | None = None, steps: int | None = None,
          shares: str | None = None, front_end: str = "spectrum", seeds: list[int] | None = None,
          paired: bool = False, split: str = "test", snr_db: float | None = None) -> str:
    """One row per target ratio, one column per method: accuracy mean ± sd (achieved ratio, seeds).

    ``paired`` adds a column: the first method minus the second, seed by seed (same dense model),
    as mean ± sd in pp, and on how many seeds the first is ahead. ``split``: see ``accuracy``;
    ``snr_db``: see ``latest_records``."""
    if snr_db is not None and split != "test":
        raise SystemExit("--snr-db adds noise to the test windows only; use it with --split test")
    latest = latest_records(path, methods, speed_jitter, ratios, model, protocol, steps, shares, front_end, seeds,
                            snr_db)
    cells: dict[tuple, list[dict]] = defaultdict(list)
    for (ratio, method, _), r in latest.items():
        cells[(ratio, method)].append(r)
    extra = [f"{methods[0]} − {methods[1]}, paired (pp; ahead on)"] if paired else []
    lines = ["| target ratio | " + " | ".join(methods + extra) + " |", "|---|" + "---|" * (len(methods) + len(extra))]
    for ratio in sorted({k[0] for k in cells}):
        row = [f"{ratio:g}×"]
        for m in methods:
            rs = cells.get((ratio, m), [])
            if not rs:
                row.append("–")
                continue
            acc = [100 * accuracy(r, split) for r in rs]
            got = statistics.mean(r["ratio_achieved"] for r in rs)
            note = "" if abs(got / ratio - 1) <= RATIO_TOLERANCE else f" (reached only {got:.2f}×)"
            row.append(f"{mean_sd(acc)}{note}")
        if paired:
            row.append(paired_cell(paired_differences(latest, methods[0], methods[1], ratio, split)))
        lines.append(md_row(row))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--methods", nargs="+", help="only these methods")
    ap.add_argument("--speed-jitter", type=float, help="only records with this recovery/dense speed jitter")
    ap.add_argument("--ratios", nargs="+", type=float, help="only these target ratios")
    ap.add_argument("--pivot", action="store_true", help="one row per ratio, one column per --methods entry")
    ap.add_argument("--model")
    ap.add_argument("--protocol")
    ap.add_argument("--recovery-steps", type=int, help="with --pivot: only runs with this total recovery budget")
    ap.add_argument("--shares", help="with --pivot: only runs with this budget split, e.g. 0.6/0.2/0.2")
    ap.add_argument("--front-end", help="only records whose dense model used this front end (pivot: spectrum)")
    ap.add_argument("--seeds", nargs="+", type=int, help="with --pivot: only these seeds")
    ap.add_argument("--paired", action="store_true",
                    help="with --pivot: add the seed-by-seed difference of the first two --methods")
    ap.add_argument("--split", choices=["test", "val"], default="test",
                    help="with --pivot: accuracy on the test split (default) or the validation split")
    ap.add_argument("--snr-db", type=float,
                    help="with --pivot: the records scored with white noise at this SNR on the test windows "
                         "(default: clean)")
    args = ap.parse_args(argv)
    for p in args.paths:
        if args.pivot:
            print(pivot(p, args.methods, args.speed_jitter, args.ratios, args.model, args.protocol,
                        args.recovery_steps, args.shares, args.front_end or "spectrum", args.seeds, args.paired,
                        args.split, args.snr_db))
        else:
            print(summarise(p, args.methods, args.speed_jitter, args.ratios, args.front_end))


if __name__ == "__main__":
    main()
