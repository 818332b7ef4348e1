"""SmolLM2-135M heads at 1.05x (lm@seq=64, 16 calibration windows, seed 42): which heads wanda_sp, activation and l1
remove, per layer, and their per-layer score scales. Diagnostic for the README (sia section); its output is in
benchmarks/results/sia_gap.txt. Run: HF_HUB_OFFLINE=1 python benchmarks/sia_gap_layers.py"""
import torch, math
from cascadeprune import load_model
from cascadeprune.tasks import get_task
from cascadeprune.calib import collect
from cascadeprune.importance import score
from cascadeprune.methods.select import select
from cascadeprune.arch.resolve import resolve
from cascadeprune.accounting import block_params
m = load_model("smollm2-135m"); m.eval()
task = get_task("lm@seq=64", m, source="smollm2-135m")
b = task.calibration_batches(None, 16, 8, 42)
st = collect(m, b, loss_fn=task.loss)
s = resolve(m)
budget = round(block_params(m) * (1 - 1/1.05))
plans = {}
for c in ("wanda_sp", "l1", "activation"):
    sc = score("heads", c, st)
    p = select("heads", s, sc, budget)
    plans[c] = p
    print(c, {k: len(v) for k, v in sorted(p.heads.items())})
    print("  per-layer mean score", [round(float(sc[l.orig_index].mean()), 3) for l in s.layers])
# o_proj column norms per layer and activation rms per layer
print("o col L1 mean per layer", [round(float(l.o.weight.abs().sum(0).mean()), 2) for l in s.layers])
print("act rms per layer", [round(float((st.o_in[i].sumsq / st.o_in[i].count).mean().sqrt()), 3) for i, l in enumerate(s.layers)])
