"""SmolLM2-135M heads at 1.05x (lm@seq=64, 16 calibration windows, seed 42): which heads wanda_sp, activation and l1
remove, per layer, and their per-layer score scales. Diagnostic for the README (sia section); its output is in
benchmarks/results/sia_gap.txt. Run: HF_HUB_OFFLINE=1 python benchmarks/sia_gap_heads.py"""
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
for c in ("wanda_sp", "activation", "l1"):
    sc = score("heads", c, st)
    p = select("heads", s, sc, budget)
    print(c, "removes L0", sorted(p.heads.get(0, [])), "L1", sorted(p.heads.get(1, [])), "L8", sorted(p.heads.get(8, [])), flush=True)
    print("   L0 scores", [round(float(x), 3) for x in sc[0]], flush=True)
