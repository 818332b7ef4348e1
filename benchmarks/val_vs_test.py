"""Cascade minus one-shot on the unseen load (test) and on the training loads (validation), side by side.

Reads the committed compression records (benchmarks/results/cascade.jsonl) of every setup where both
methods ran on CWRU 4-class cross-load with the same dense models and recovery budget, and prints one
Markdown row per (setup, ratio): the seed-by-seed difference on the test split (the 3 hp load no model
saw) and on the validation split (held-out windows of the 0–2 hp loads the models were trained and
recovered on), each with a paired t, and one-shot's own validation accuracy. Runs nothing.

    python -m benchmarks.val_vs_test
"""

from __future__ import annotations

from benchmarks._common import RESULTS_DIR, mean_sd, paired_cell, t_stat
from benchmarks.table import accuracy, latest_records, paired_differences

RESULTS = RESULTS_DIR / "cascade.jsonl"
PROTOCOL = "cwru-4class-crossload"
SPEED_JITTER = 0.03  # every setup below starts from dense models trained with this jitter

# (label, cascade method, one-shot method, model, front end, total recovery steps, ratios)
SETUPS = [
    ("gpt2-10m, spectral, 300 LoRA steps", "cascade", "oneshot", "gpt2-10m", "spectrum", 300, [8.7, 13.8]),
    ("gpt2-10m, raw patches, 300 LoRA steps", "cascade", "oneshot", "gpt2-10m", "raw", 300, [8.7, 13.8]),
    ("gpt2-10m, raw patches, the paper's 10 + 10 + 30 epochs (last state kept)", "cascade-keeplast",
     "oneshot-keeplast", "gpt2-10m", "raw", 8550, [8.7, 13.8, 20, 25]),
    ("gpt2-deep, raw patches, 300 LoRA steps", "cascade", "oneshot", "gpt2-deep", "raw", 300, [8.7, 13.8]),
    ("gpt2-deep, raw patches, 900 LoRA steps", "cascade", "oneshot", "gpt2-deep", "raw", 900, [8.7, 13.8]),
    ("all-minilm-l6-v2, spectral, 300 LoRA steps", "cascade", "oneshot", "all-minilm-l6-v2", "spectrum", 300,
     [8.7, 13.8]),
    ("all-minilm-l6-v2, raw patches, split 0.6 / 0.05 / 0.35, 300 LoRA steps", "cascade-shares-0.6-0.05-0.35",
     "oneshot-shares-0.6-0.05-0.35", "all-minilm-l6-v2", "raw", 300, [8.7, 13.8]),
]


def table(path=RESULTS) -> str:
    out = ["| model, front end, recovery | ratio | cascade − one-shot, unseen load (test; ahead on) | t "
           "| cascade − one-shot, training loads (val; ahead on) | t | one-shot on the training loads |",
           "|---|---|---|---|---|---|---|"]
    for label, casc, one, model, front_end, steps, ratios in SETUPS:
        latest = latest_records(str(path), [casc, one], SPEED_JITTER, ratios, model, PROTOCOL, steps,
                                front_end=front_end)
        for i, ratio in enumerate(ratios):
            test = paired_differences(latest, casc, one, ratio, "test")
            val = paired_differences(latest, casc, one, ratio, "val")
            own = [100 * accuracy(r, "val") for (q, m, _), r in latest.items() if q == ratio and m == one]
            own_cell = mean_sd(own) if own else "–"
            out.append(f"| {label if i == 0 else ''} | {ratio:g}× | {paired_cell(test)} | {t_stat(test)} "
                       f"| {paired_cell(val)} | {t_stat(val)} | {own_cell} |")
    return "\n".join(out)


def main() -> None:
    print(table())


if __name__ == "__main__":
    main()
