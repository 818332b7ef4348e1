"""Why grouped ``l1`` and ``wanda_sp`` differ on SmolLM2-135M heads at 1.05x (lm@seq=64, 16
calibration windows, seed 42): for each criterion, how many heads it removes per layer, which heads
in layers 0, 1 and 8, its per-layer mean score, and the o_proj column norms and activation RMS per
layer that the scores are built from. Diagnostic for the README's SIA section; the output of the
two scripts this replaces (sia_gap_heads.py, sia_gap_layers.py; same computations) is in
benchmarks/results/sia_gap.txt.

    HF_HUB_OFFLINE=1 python -m benchmarks.sia_gap
"""

from __future__ import annotations

from cascadeprune import load_model
from cascadeprune.accounting import block_params
from cascadeprune.arch.resolve import resolve
from cascadeprune.calib import collect
from cascadeprune.importance import score
from cascadeprune.methods.select import select
from cascadeprune.tasks import get_task

CRITERIA = ("wanda_sp", "l1", "activation")


def main() -> None:
    model = load_model("smollm2-135m").eval()
    task = get_task("lm@seq=64", model, source="smollm2-135m")
    stats = collect(model, task.calibration_batches(None, 16, 8, 42), loss_fn=task.loss)
    s = resolve(model)
    budget = round(block_params(model) * (1 - 1 / 1.05))
    for c in CRITERIA:
        sc = score("heads", c, stats)
        plan = select("heads", s, sc, budget)
        print(c, "heads removed per layer", {k: len(v) for k, v in sorted(plan.heads.items())}, flush=True)
        print("   removes L0", sorted(plan.heads.get(0, [])), "L1", sorted(plan.heads.get(1, [])),
              "L8", sorted(plan.heads.get(8, [])))
        print("   L0 scores", [round(float(x), 3) for x in sc[0]])
        print("   per-layer mean score", [round(float(sc[l.orig_index].mean()), 3) for l in s.layers], flush=True)
    print("o_proj column L1 norm, mean per layer", [round(float(l.o.weight.abs().sum(0).mean()), 2) for l in s.layers])
    print("o_proj input RMS per layer", [round(float((stats.o_in[i].sumsq / stats.o_in[i].count).mean().sqrt()), 3)
                                         for i, _ in enumerate(s.layers)])


if __name__ == "__main__":
    main()
