"""``method: auto``: the engine decides how to compress a model from its own measurements, on validation only.

Given a model, a task and a target (a ratio, or ``max_loss``: the most compression whose validation loss stays
within a tolerance), :func:`search` measures and decides, inside a search budget (candidates scored on
validation, or wall-clock time), and returns the compressed model, its plan and a decision log:

1. **feasibility** first: a ratio no plan of the allowed granularities (and layout) can reach is refused
   before any calibration, evaluation or training is spent;
2. **granularities** from the empirical SIA check of this model (:func:`cascadeprune.sia.measure.measure`,
   cheap settings): heads judged *violated* are dropped; channels judged *violated* keep only the
   group-aware criterion (grouped Taylor); layers stay (they are whole units) — each action logged;
3. **criterion per granularity**: every criterion registered for it in :mod:`cascadeprune.importance`
   (so new ones are picked up without a change here; ``random`` is the floor, not a contender), scored on
   the dense model's calibration statistics, judged by the masked validation loss of that granularity's
   probe cut;
4. **allocation** of the cut across granularities and across depth (per-layer widths: global ranking,
   uniform share, or a linear ramp that cuts more late / early; ``layout: uniform`` allows only the same
   widths in every kept layer) by a grid over the shares, then coordinate descent around the best
   (masked validation loss), then successive halving on the finalists: the best few get a short recovery
   and are compared again;
5. **recovery recipe** by coordinate descent from the recipe measured best on SmolLM2 (LoRA on every
   linear, rank 8, lr 1e-3, at the end): LoRA targets, rank, learning rate, LoRA vs logit distillation
   from the dense model, all at the end vs split between the coarse and the fine cut — each variant a
   short recovery of the winning plan, judged on validation;
6. the winner is cut for real and recovered with the run's full recovery budget and the chosen recipe.

Scores are the task's primary validation metric as a loss (log perplexity; 1 - accuracy, ties broken by
validation cross-entropy). The test split is never read here.

Example::

    res = search(model, task, 2.0, budget="24", recovery=RecoveryConfig(steps=32, batch_size=8))
    res.plan, res.log["summary"]
"""

from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from cascadeprune.accounting import block_params, dense_block_params, predict_block_params, unit_costs
from cascadeprune.arch.resolve import resolve
from cascadeprune.calib import collect, collect_ablation
from cascadeprune.errors import CascadePruneError
from cascadeprune.importance import names, score, spec
from cascadeprune.methods.config import CalibrationConfig, RecoveryConfig, parse_search_budget
from cascadeprune.methods.select import per_layer_ranks, select
from cascadeprune.methods.sia_gate import sia_check
from cascadeprune.plan import PruningPlan, applied_plan
from cascadeprune.recovery import recover
from cascadeprune.surgery import apply_plan, mask_plan

FORMAT = "cascadeprune-auto/1"
GRANULARITIES = ("layers", "heads", "channels")
TOLERANCE = 0.01  # the achieved ratio is within 1 % of the target
NOT_CONTENDERS = {"random"}  # the floor every criterion must beat, not a choice
GROUP_AWARE = {"heads": "taylor", "channels": "taylor"}  # what a violated granularity keeps (grouped mode)
PROFILES = ("global", "uniform", "ramp_late", "ramp_early")  # per-layer width allocations (non-uniform layout)
RAMP = 0.5  # a ramp's slope: the last layer loses (1 + RAMP) / (1 - RAMP) times the first one's share
SHORT_FRACTION = 0.25  # a short recovery is this share of the full budget (at least 2 steps)
FINALISTS = 3
CRITERIA_SHARE = 0.3  # at most this share of an evaluation budget judges criteria (split between granularities)
# probed first, so a small budget still tries them: the paper's LCR and ShortGPT's Block Influence for layers, then the
# similarity measures (angular distance, CKA), then the measured ablation; Taylor and Wanda-SP for heads and channels
# (DESIGN.md: weight-only scores misjudge gated channels)
PROBE_FIRST = {"layers": ("lcr", "block_influence", "angular", "cka"), "heads": ("taylor", "wanda_sp"),
               "channels": ("taylor", "wanda_sp")}
RESERVE_SHARE = 0.4  # at most this share is kept for the finalists and the recovery recipes
# the recovery recipe the search starts from: LoRA on every linear, lr 1e-3 beat attention-only on SmolLM2
# (DESIGN.md, "Recovery recipe on SmolLM2")
START_RECIPE = {"method": "lora", "targets": "all", "rank": 8, "lr": 1e-3, "schedule": "end"}
WALK_SHARE = 0.4  # max_loss: the walk over ratios stops after this share of the budget; the full search gets the rest
RATIO_WALK = (1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.5, 8.0, 10.0, 13.0, 16.0, 20.0, 25.0, 30.0, 40.0, 50.0)


# -- budget -----------------------------------------------------------------------------------

class Budget:
    """Candidates scored on validation (``evals``) or wall-clock seconds (``seconds``) for the whole search."""

    def __init__(self, spec: str | int):
        self.kind, self.limit = parse_search_budget(spec)
        self.spec, self.evals, self.t0 = str(spec), 0, time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def left(self) -> float:
        """Evaluations left (or the equivalent share of the time left, in the same unit as a fraction)."""
        if self.kind == "evals":
            return self.limit - self.evals
        return (self.limit - self.elapsed()) / self.limit

    def can(self, n: int = 1) -> bool:
        if self.kind == "evals":
            return self.evals + n <= self.limit
        return self.elapsed() < self.limit

    def share(self, fraction: float) -> int:
        """About ``fraction`` of the evaluations still left (time budgets: no cap, the clock decides)."""
        return max(1, int((self.limit - self.evals) * fraction)) if self.kind == "evals" else 10**6

    def spent(self, fraction: float) -> bool:
        """Whether ``fraction`` of the whole budget (evaluations or time) is used up."""
        return (self.evals if self.kind == "evals" else self.elapsed()) >= fraction * self.limit

    def to_dict(self) -> dict:
        return {"spec": self.spec, "kind": self.kind, "limit": self.limit, "evaluations_used": self.evals,
                "search_s": round(self.elapsed(), 2)}


# -- the search state -------------------------------------------------------------------------

@dataclass
class Candidate:
    id: int
    phase: str
    what: dict
    val: float  # the task's primary validation metric
    key: tuple  # (loss, tie-breaker): lower is better
    ratio: float
    wall_s: float
    plan: PruningPlan | None = None
    note: str = ""

    def row(self) -> dict:
        return {"id": self.id, "phase": self.phase, **self.what, "val": self.val, "score": self.key[0],
                "ratio": round(self.ratio, 4), "wall_s": round(self.wall_s, 3), **({"note": self.note} if self.note
                                                                                  else {})}


@dataclass
class Ctx:
    model: nn.Module
    task: object
    ratio: float
    layout: str
    budget: Budget
    seed: int
    protect_ends: bool
    max_fraction: float
    progress: bool
    dense_blocks: int = 0
    target: int = 0
    scores: dict = field(default_factory=dict)  # (granularity, criterion) -> scores on the dense model
    criterion: dict = field(default_factory=dict)  # granularity -> chosen criterion
    granularities: tuple = ()
    candidates: list = field(default_factory=list)
    decisions: list = field(default_factory=list)
    dense_val: float = math.nan
    dense_key: tuple = ()

    def say(self, msg: str) -> None:
        if self.progress:
            print(f"  auto: {msg}", file=sys.stderr, flush=True)


def val_key(task, metrics: dict) -> tuple:
    """The validation loss a decision compares (lower is better): log perplexity, or 1 - accuracy then nll."""
    v = metrics[task.metric]
    if task.higher_is_better:
        return (1.0 - v, metrics.get("nll", 0.0))
    return (math.log(v) if v > 0 else -math.inf, 0.0)


def _best(ctx: Ctx) -> str:
    """How the decision log words the winner of a comparison by :func:`val_key` (ties on accuracy go to the lower
    validation nll)."""
    return "highest" if ctx.task.higher_is_better else "lowest"


def evaluate_val(ctx: Ctx, model: nn.Module, plan: PruningPlan | None = None, count: bool = True
                 ) -> tuple[float, tuple]:
    """The task's validation metric of ``model`` with ``plan`` masked (a search candidate counts one evaluation;
    the dense model and the final one do not)."""
    ctx.budget.evals += int(count)
    if plan is None or plan.is_empty():
        m = ctx.task.evaluate(model, "val")
    else:
        with mask_plan(model, plan):
            m = ctx.task.evaluate(model, "val")
    return m[ctx.task.metric], val_key(ctx.task, m)


def _add(ctx: Ctx, phase: str, what: dict, val: float, key: tuple, ratio: float, t0: float,
         plan: PruningPlan | None = None, note: str = "") -> Candidate:
    c = Candidate(len(ctx.candidates), phase, what, val, key, ratio, time.perf_counter() - t0, plan, note)
    ctx.candidates.append(c)
    ctx.say(f"[{phase}] {what} -> val {ctx.task.metric} {val:.4g} ({c.wall_s:.1f} s)")
    return c


def _decide(ctx: Ctx, decision: str, chosen, why: str) -> None:
    ctx.decisions.append({"decision": decision, "chosen": chosen, "why": why})
    ctx.say(f"decided {decision}: {chosen} ({why})")


# -- plans ------------------------------------------------------------------------------------

def _restrict(scores: dict, s, plan: PruningPlan) -> dict:
    """Units of layers the plan already removes score +inf (choosing them would save nothing)."""
    if all(isinstance(v, float) for v in scores.values()):
        return {k: (math.inf if k in plan.layers else v) for k, v in scores.items()}
    return {l.orig_index: scores[l.orig_index] if l.orig_index not in plan.layers
            else torch.full_like(torch.as_tensor(scores[l.orig_index], dtype=torch.float64), math.inf)
            for l in s.layers}


def _kept(s, plan: PruningPlan) -> list:
    return [l for l in s.layers if l.orig_index not in plan.layers]


def _ramp(s, scores: dict, plan: PruningPlan, slope: float) -> dict:
    """Per-layer ranks divided by a linear weight over depth: a layer of weight w loses about w times the mean
    share (slope > 0: later layers lose more)."""
    kept = _kept(s, plan)
    ranks = per_layer_ranks(scores)
    n = max(len(kept) - 1, 1)
    weight = {l.orig_index: 1 + slope * (2 * p / n - 1) for p, l in enumerate(kept)}
    return {k: (v / weight[k] if k in weight else v) for k, v in ranks.items()}


def _uniform_heads(s, scores: dict, plan: PruningPlan, k: int) -> PruningPlan:
    """``k`` heads from every KV group (MHA: from every layer) of every kept layer, the lowest-scored."""
    D = s.dims.group_size
    out = {}
    for l in _kept(s, plan):
        sc = scores[l.orig_index]
        groups: dict[int, list[int]] = {}
        for pos, h in enumerate(l.heads):
            groups.setdefault(h // D if D > 1 else 0, []).append(pos)
        gone = set()
        for pos in groups.values():
            gone |= {l.heads[p] for p in sorted(pos, key=lambda q: (float(sc[q]), q))[:k]}
        out[l.orig_index] = gone
    return PruningPlan(heads=out)


def _uniform_channels(s, scores: dict, plan: PruningPlan, k: int) -> PruningPlan:
    out = {}
    for l in _kept(s, plan):
        sc = scores[l.orig_index]
        order = sorted(range(len(l.channels)), key=lambda q: (float(sc[q]), q))[:k]
        out[l.orig_index] = {l.channels[p] for p in order}
    return PruningPlan(channels=out)


def _max_uniform_k(s, granularity: str, max_fraction: float) -> int:
    if granularity == "channels":
        return min(min(len(l.channels) - 1, int(max_fraction * len(l.channels))) for l in s.layers)
    D = s.dims.group_size
    return (D - 1) if D > 1 else min(len(l.heads) - 1 for l in s.layers)


def _cut(ctx: Ctx, granularity: str, plan: PruningPlan, params: int, profile: str, close: bool = False) -> PruningPlan:
    """Units of ``granularity`` removing about ``params`` more block params beyond ``plan``: never more for
    layers and heads; for channels (the closing granularity, ``close``) the nearest."""
    s, model = resolve(ctx.model), ctx.model
    sc = _restrict(ctx.scores[(granularity, ctx.criterion[granularity])], s, plan)
    if params <= 0:
        return PruningPlan()
    if granularity == "layers":
        return select("layers", s, sc, params)
    if ctx.layout == "uniform" or (profile == "uniform" and granularity == "heads"):
        base = predict_block_params(model, plan)
        make = _uniform_heads if granularity == "heads" else _uniform_channels
        best = PruningPlan()
        for k in range(1, _max_uniform_k(s, granularity, ctx.max_fraction) + 1):
            p = make(s, sc, plan, k)
            gone = base - predict_block_params(model, plan | p)
            if gone > params:
                if close and abs(gone - params) < abs(base - predict_block_params(model, plan | best) - params):
                    best = p
                break
            best = p
        return best
    if granularity == "heads":
        return select("heads", s, sc, params)
    if profile.startswith("ramp"):
        sc = _ramp(s, sc, plan, RAMP if profile == "ramp_late" else -RAMP)
    return select("channels", s, sc, params, max_fraction=ctx.max_fraction,
                  allocation="uniform" if profile == "uniform" else "global")


# Closing the gap a plan's shares leave, tried in turn from the shares' plan: channels alone (the finest cut);
# where they reach their cap (max_channel_fraction of each layer) first, heads then channels, then layers, heads
# and channels (coarse to fine). Without the later closers no share vector of the grid landed on gpt2-deep at
# 30x and 50x, so auto found no plan where the cascade reached 50x; with them the shares are a starting point
# there, not a cap.
CLOSERS = (("channels",), ("heads", "channels"), ("layers", "heads", "channels"))


def build_plan(ctx: Ctx, shares: dict[str, float], profile: str = "global") -> PruningPlan | None:
    """The plan for ``shares`` (granularity -> share of the parameter cut, summing to 1) and the per-layer
    ``profile``; channels close the gap to the target (heads and layers too where channels reach their cap:
    :data:`CLOSERS`). None when it cannot land within 1 % of the ratio."""
    model, start, target = ctx.model, ctx.dense_blocks, ctx.target
    need, cum, plan = start - target, 0.0, PruningPlan()
    order = [g for g in GRANULARITIES if shares.get(g, 0) > 0]
    for g in order:
        cum += shares[g]
        goal = round(start - need * min(cum, 1.0))
        plan = plan | _cut(ctx, g, plan, predict_block_params(model, plan) - goal, profile, close=g == "channels")
    lands = lambda p: abs(start / predict_block_params(model, p) / ctx.ratio - 1) <= TOLERANCE  # noqa: E731
    if lands(plan):
        return plan
    for closer in CLOSERS:  # each from the shares' plan; the first that lands wins
        closed = plan
        for g in (g for g in closer if g in ctx.granularities):
            left = predict_block_params(model, closed)
            if left <= target:
                break
            closed = closed | _cut(ctx, g, closed, left - target, profile, close=g == "channels")
        if lands(closed):
            return closed
    return None


def _ratio_of(ctx: Ctx, plan: PruningPlan) -> float:
    return ctx.dense_blocks / predict_block_params(ctx.model, plan)


# -- feasibility ------------------------------------------------------------------------------

def allowed_granularities(model: nn.Module) -> list[str]:
    s = resolve(model)
    out = []
    if not (s.family.index_dependent_option and getattr(model.config if hasattr(model, "config") else s.model.config,
                                                         s.family.index_dependent_option, False)):
        out.append("layers")
    if not s.family.heads_refused:
        out.append("heads")
    out.append("channels")
    return out


def max_plan(model: nn.Module, layout: str = "nonuniform", protect_ends: bool = True,
             max_fraction: float = 0.97) -> PruningPlan:
    """The most compressed plan of the allowed granularities: every unprotected layer but one gone, then every
    head and channel the rules let go (one head per KV group, ``max_fraction`` of channels). Its shape bounds what
    any searched plan reaches (an outer search measures its latency before searching: deploy/targets.py)."""
    s = resolve(model)
    gs = allowed_granularities(model)
    plan = PruningPlan()
    if "layers" in gs:
        ends = {s.layers[0].orig_index, s.layers[-1].orig_index} if protect_ends and len(s.layers) > 2 else set()
        sizes = {l.orig_index: sum(p.numel() for p in l.module.parameters()) for l in s.layers}
        order = sorted((i for i in sizes if i not in ends), key=lambda i: (sizes[i], i))
        keep = 1 if not ends else 0
        plan = PruningPlan(layers=set(order[: max(0, len(order) - keep)]))
    zeros = lambda g: {l.orig_index: torch.zeros(len(l.heads if g == "heads" else l.channels),  # noqa: E731
                                                 dtype=torch.float64) for l in s.layers}
    if "heads" in gs:
        plan = plan | (_uniform_heads(s, zeros("heads"), plan, _max_uniform_k(s, "heads", 1.0))
                       if layout == "uniform" else select("heads", s, _restrict(zeros("heads"), s, plan), 10**15))
    plan = plan | (_uniform_channels(s, zeros("channels"), plan, _max_uniform_k(s, "channels", max_fraction))
                   if layout == "uniform" else
                   select("channels", s, _restrict(zeros("channels"), s, plan), 10**15, max_fraction=max_fraction))
    return plan


def max_ratio(model: nn.Module, layout: str = "nonuniform", protect_ends: bool = True,
              max_fraction: float = 0.97) -> float:
    """The largest ratio any plan of the allowed granularities reaches (:func:`max_plan`'s)."""
    return dense_block_params(model) / predict_block_params(model, max_plan(model, layout, protect_ends, max_fraction))


def check_feasible(model: nn.Module, ratio: float, layout: str, protect_ends: bool, max_fraction: float) -> float:
    if block_params(model) != dense_block_params(model):
        raise CascadePruneError("method auto starts from a dense model; this one is already pruned "
                                f"({dense_block_params(model) / block_params(model):.2f}x): compress its dense source")
    if ratio < 1 + TOLERANCE:  # the dense model is already within the tolerance of the target: nothing to search
        raise CascadePruneError(f"ratio {ratio:g} is within {TOLERANCE:.0%} of the dense model (1x), so there is "
                                f"nothing to prune; ask for at least {1 + TOLERANCE:g}")
    top = max_ratio(model, layout, protect_ends, max_fraction)
    if ratio > top * (1 + TOLERANCE):
        raise CascadePruneError(
            f"ratio {ratio:g} is not reachable by method auto on this model: the most any plan reaches is "
            f"{top:.3g}x ({'same widths in every layer, ' if layout == 'uniform' else ''}at least one layer, one "
            f"head per KV group and {1 - max_fraction:.0%} of each layer's channels stay); ask for at most {top:.3g}")
    return top


# -- phases -----------------------------------------------------------------------------------

def _statistics(ctx: Ctx, batches: list) -> None:
    """Every registered criterion of every granularity scored once on the dense model's calibration statistics."""
    t0 = time.perf_counter()
    needs = [spec(g, c) for g in ctx.granularities for c in names(g) if c not in NOT_CONTENDERS]
    stats = collect(ctx.model, batches, loss_fn=ctx.task.loss, gradients=any(n.gradients for n in needs))
    if any(n.ablation for n in needs):
        collect_ablation(ctx.model, batches[:1], ctx.task.loss, stats)  # one pass per layer: one batch only
    skipped = {}
    for g in ctx.granularities:
        for c in names(g):
            if c in NOT_CONTENDERS:
                continue
            try:
                ctx.scores[(g, c)] = score(g, c, stats, seed=ctx.seed, protect_ends=ctx.protect_ends)
            except (ValueError, KeyError, AttributeError) as e:  # a criterion needing statistics we lack
                skipped[f"{g}/{c}"] = str(e)
    ctx.stats_s = time.perf_counter() - t0
    ctx.skipped_criteria = skipped


def _sia(ctx: Ctx, batches: list, mode: str) -> dict:
    """The empirical SIA check per granularity (cheap settings); the action each verdict implies."""
    measure = sia_check()
    if measure is None and mode != "skip":
        mode, why_not = "skip", "no SIA check registered (cascadeprune.wiring registers sia.measure)"
    else:
        why_not = "sia: skip"
    out = {}
    # cheap settings: two batches of at most 4 calibration windows, 8 units, 6 pairs, one random set
    small = [b[:4] if hasattr(b, "__getitem__") and not isinstance(b, (tuple, list)) else b for b in batches[:2]]
    for g in list(ctx.granularities):
        if mode == "skip" or len(batches) < 2:
            out[g] = {"verdict": "not measured", "action": "kept, every criterion",
                      "why": why_not if mode == "skip" else "fewer than two calibration batches"}
            continue
        if g == "layers":  # no action depends on the layers' verdict (they are whole units): not spent
            out[g] = {"verdict": "not measured", "action": "kept, every criterion",
                      "why": "whole layers have no grouped form, so no verdict would change what is tried"}
            continue
        t0 = time.perf_counter()
        try:
            r = measure(ctx.model, ctx.task, g, ratio=min(max(ctx.ratio, 1.05), 2.0), units=8, pairs=6,
                        random_sets=1, seed=ctx.seed, batches=small)
        except CascadePruneError as e:
            out[g] = {"verdict": "not measured", "action": "kept, every criterion", "why": str(e)}
            continue
        v = r["verdict"]
        row = {"verdict": v, "signals": [s["what"] for s in r["signals"]], "wall_s": round(time.perf_counter() - t0, 2)}
        if v != "violated":
            row["action"] = "kept, every criterion"
        elif g == "heads":
            row["action"] = "dropped"
        elif g == "channels":
            row["action"] = f"kept with the group-aware criterion only (grouped {GROUP_AWARE[g]})"
        else:
            row["action"] = "kept (whole layers have no group-aware form); the allocation search weighs them"
        out[g] = row
        ctx.say(f"sia {g}: {v} -> {row['action']}")
    return out


def _apply_sia(ctx: Ctx, sia: dict) -> None:
    keep = [g for g in ctx.granularities if sia.get(g, {}).get("action") != "dropped"]
    if not keep or "channels" not in keep:
        keep = list(ctx.granularities)
    dropped = [g for g in ctx.granularities if g not in keep]
    if dropped:  # only if the rest still reaches the target
        saved = ctx.granularities
        ctx.granularities = tuple(keep)
        if max_ratio_of(ctx) < ctx.ratio * (1 - TOLERANCE):
            ctx.granularities = saved
            for g in dropped:
                sia[g]["action"] = "kept despite the verdict: the others cannot reach the ratio alone"
            dropped = []
    for g in ctx.granularities:
        if sia.get(g, {}).get("verdict") == "violated" and g in GROUP_AWARE and (g, GROUP_AWARE[g]) in ctx.scores:
            for c in [c for (gg, c) in ctx.scores if gg == g and c != GROUP_AWARE[g]]:
                del ctx.scores[(g, c)]
    _decide(ctx, "granularities", list(ctx.granularities),
            "; ".join(f"{g}: SIA {sia[g]['verdict']} -> {sia[g]['action']}" for g in sia))


def max_ratio_of(ctx: Ctx) -> float:
    """The largest ratio the current granularities reach (the feasibility bound, without the dropped ones)."""
    s = resolve(ctx.model)
    plan = PruningPlan()
    if "layers" in ctx.granularities:
        plan = select("layers", s, ctx.scores[("layers", next(c for g, c in ctx.scores if g == "layers"))], 10**15)
    for g in ("heads", "channels"):
        if g in ctx.granularities:
            z = {l.orig_index: torch.zeros(len(l.heads if g == "heads" else l.channels), dtype=torch.float64)
                 for l in s.layers}
            plan = plan | (select(g, s, _restrict(z, s, plan), 10**15, max_fraction=ctx.max_fraction)
                           if ctx.layout != "uniform" else
                           (_uniform_heads if g == "heads" else _uniform_channels)(
                               s, z, plan, _max_uniform_k(s, g, ctx.max_fraction)))
    return ctx.dense_blocks / predict_block_params(ctx.model, plan)


def probe_order(granularity: str, names_g: list[str]) -> list[str]:
    """The order criteria are probed in: the published or measured-best ones first (PROBE_FIRST), then the
    rest alphabetically, so a small budget still probes those."""
    first = [c for c in PROBE_FIRST.get(granularity, ()) if c in names_g]
    return first + sorted(c for c in names_g if c not in first)


def _criteria(ctx: Ctx) -> None:
    """Per granularity, the criterion whose probe cut (this granularity's equal share of the cut, masked)
    has the lowest validation loss. The probe budget (CRITERIA_SHARE of an evaluation budget) is split evenly
    between the granularities that have a choice (what one leaves unused goes to the next); a criterion whose
    probe plan equals one already scored shares its score at no cost; one left out is logged as
    ``not scored (budget)``."""
    n = len(ctx.granularities)
    need = ctx.dense_blocks - ctx.target
    s = resolve(ctx.model)
    total = ctx.budget.evals + ctx.budget.share(CRITERIA_SHARE)  # the rest is the allocation's and the finalists'
    choosing = [g for g in ctx.granularities if len([1 for gg, _ in ctx.scores if gg == g]) > 1]
    ctx.not_scored = {}
    for g in ctx.granularities:
        names_g = probe_order(g, [c for gg, c in ctx.scores if gg == g])
        if len(names_g) == 1:
            ctx.criterion[g] = names_g[0]
            _decide(ctx, f"criterion:{g}", names_g[0], "the only criterion left for it")
            continue
        left_here = len(choosing) - choosing.index(g)  # granularities still to probe, this one included
        cap = ctx.budget.evals + max(1, (total - ctx.budget.evals) // left_here)
        amount = need / n
        if g == "layers":
            amount = max(amount, min(sum(p.numel() for p in l.module.parameters()) for l in s.layers))
        rows, plans, unscored = [], [], []
        for c in names_g:
            ctx.criterion[g] = c
            t0 = time.perf_counter()
            plan = _cut(ctx, g, PruningPlan(), round(amount), "uniform" if ctx.layout == "uniform" else "global",
                        close=g == "channels")
            if plan.is_empty():
                continue
            same = next((r for p, r in plans if p == plan), None)
            if same is not None:  # the same cut as a criterion scored already: its score, no evaluation spent
                rows.append(_add(ctx, "criterion", {"granularity": g, "criterion": c}, same.val, same.key,
                                 same.ratio, t0, note=f"same plan as {same.what['criterion']} (not re-evaluated)"))
                continue
            if not ctx.budget.can() or (ctx.budget.kind == "evals" and ctx.budget.evals >= cap):
                unscored.append(c)
                continue
            val, key = evaluate_val(ctx, ctx.model, plan)
            rows.append(_add(ctx, "criterion", {"granularity": g, "criterion": c}, val, key, _ratio_of(ctx, plan), t0))
            plans.append((plan, rows[-1]))
        if unscored:
            ctx.not_scored[g] = unscored
            ctx.say(f"{g} criteria not scored (budget): {', '.join(unscored)}")
        skipped = f"; not scored (budget): {', '.join(unscored)}" if unscored else ""
        if not rows:
            pick = names_g[0]
            ctx.criterion[g] = pick
            _decide(ctx, f"criterion:{g}", pick,
                    "no probe could be scored (budget or cut too small): the first in the probe order" + skipped)
            continue
        best = min(rows, key=lambda r: r.key)
        ctx.criterion[g] = best.what["criterion"]
        others = ", ".join(f"{r.what['criterion']} {r.val:.4g}" for r in sorted(rows, key=lambda r: r.key)[1:])
        _decide(ctx, f"criterion:{g}", best.what["criterion"],
                f"{_best(ctx)} masked validation {ctx.task.metric} of a {g} probe cut ({best.val:.4g}"
                + (f"; others: {others})" if others else "; the only one scored)") + skipped)


def _simplex(gs: tuple, step: float) -> list[dict]:
    n = round(1 / step)
    out = []

    def rec(i, left, acc):
        if i == len(gs) - 1:
            out.append({**acc, gs[i]: round(left * step, 4)})
            return
        for k in range(left + 1):
            rec(i + 1, left - k, {**acc, gs[i]: round(k * step, 4)})

    rec(0, n, {})
    return out


def _score_alloc(ctx: Ctx, shares: dict, profile: str, phase: str, seen: dict) -> Candidate | None:
    key = (tuple(sorted(shares.items())), profile)
    if key in seen:
        return seen[key]
    t0 = time.perf_counter()
    plan = build_plan(ctx, shares, profile)
    if plan is None:
        seen[key] = None
        return None
    dup = next((c for c in ctx.candidates if c.plan is not None and c.plan == plan), None)
    if dup is not None:  # another setting gave the same plan: same score, no evaluation spent
        seen[key] = dup
        return dup
    if not ctx.budget.can():
        return None
    val, k = evaluate_val(ctx, ctx.model, plan)
    c = _add(ctx, phase, {"shares": shares, "profile": profile}, val, k, _ratio_of(ctx, plan), t0, plan)
    seen[key] = c
    return c


def _allocation(ctx: Ctx, reserve: int) -> list[Candidate]:
    """Grid over the shares (step 1/4), then coordinate descent on the shares and the per-layer profile,
    every candidate scored by masked validation loss; returns the scored candidates, best first."""
    gs = ctx.granularities
    profiles = ("uniform",) if ctx.layout == "uniform" else PROFILES
    seen: dict = {}
    start = "uniform" if ctx.layout == "uniform" else "global"
    def room() -> bool:  # evaluations beyond the finalists' and recipes' reserve; or half of a time budget
        b = ctx.budget
        if not any(c is not None for c in seen.values()):  # one scored plan at least, while the budget lasts
            return b.can()
        return b.left() > reserve if b.kind == "evals" else b.elapsed() < 0.5 * b.limit

    for plan, val, key, shares, criteria in getattr(ctx, "seeds", ()):  # scored already (max-loss walk): free
        seen[("seed", len(seen))] = _add(ctx, "allocation-seed", {"shares": shares, "profile": start,
                                                                  "criteria": criteria}, val, key,
                                         _ratio_of(ctx, plan), time.perf_counter(), plan,
                                         "the max-loss walk's best plan at this ratio (scored there)")
    for shares in _simplex(gs, 0.5 if len(gs) > 1 else 1.0):
        if not room():
            break
        _score_alloc(ctx, shares, start, "allocation-grid", seen)

    def scored() -> list:
        uniq = {c.id: c for c in seen.values() if c is not None}
        return sorted(uniq.values(), key=lambda c: c.key)

    if not scored() and not ctx.budget.can():
        raise CascadePruneError(f"search budget {ctx.budget.spec} ran out before any plan was scored; raise "
                                "--search-budget (auto.search_budget)")
    if not scored():
        raise CascadePruneError(f"method auto found no plan within 1 % of ratio {ctx.ratio:g} with granularities "
                                f"{', '.join(gs)} (layout {ctx.layout}); ask for a lower ratio")
    best = scored()[0]
    step = 0.25
    while step >= 0.125 and room():
        improved = False
        shares, profile = best.what["shares"], best.what["profile"]
        moves = [(dict(shares), p) for p in profiles if p != profile]
        for a in gs:
            for b in gs:
                if a != b and shares[a] >= step - 1e-9:
                    new = dict(shares)
                    new[a], new[b] = round(new[a] - step, 4), round(new[b] + step, 4)
                    moves.append((new, profile))
        for new, p in moves:
            if not room():
                break
            c = _score_alloc(ctx, new, p, "allocation-descent", seen)
            if c is not None and c.key < best.key:
                best, improved = c, True
        if not improved:
            step /= 2
    return scored()


def _recovered_copy(ctx: Ctx, plan: PruningPlan, recipe: dict, steps: int, base: RecoveryConfig, teacher) -> nn.Module:
    m = copy.deepcopy(ctx.model)
    cut_and_recover(m, ctx.task, plan, recipe, steps, base, ctx.seed, teacher, keep="last", progress=False)
    return m


def recovery_config(recipe: dict, steps: int, base: RecoveryConfig, keep: str | None = None) -> RecoveryConfig:
    upd = {"method": recipe["method"], "targets": recipe["targets"], "rank": recipe["rank"], "lr": recipe["lr"],
           "steps": steps, "epochs": None}
    if keep:
        upd["keep"] = keep
    return base.model_copy(update=upd)


def split_plan(plan: PruningPlan) -> tuple[PruningPlan, PruningPlan]:
    """The coarse part (layers and heads) and the fine part (channels) of a plan, for a split schedule."""
    return PruningPlan(plan.layers, plan.heads), PruningPlan(channels=plan.channels)


def cut_and_recover(model: nn.Module, task, plan: PruningPlan, recipe: dict, steps: int, base: RecoveryConfig,
                    seed: int, teacher=None, keep: str | None = None, progress: bool = False) -> list[dict]:
    """Apply ``plan`` to ``model`` in place and recover with ``recipe``: all ``steps`` at the end, or (``split``)
    half after the coarse part and half after the fine part. Returns each recovery's report."""
    parts = [plan] if recipe["schedule"] == "end" else [p for p in split_plan(plan) if not p.is_empty()]
    out, left = [], steps
    for i, part in enumerate(parts):
        apply_plan(model, part, inplace=True)
        n = left if i == len(parts) - 1 else steps // len(parts)
        left -= n
        if n and recipe["method"] != "none":
            out.append(recover(model, task, recovery_config(recipe, n, base, keep), seed=seed + 1 + i,
                               teacher=teacher, progress=progress, desc=f"auto: recover {i + 1}/{len(parts)}"))
    return out


def finalist_pool(ranked: list[Candidate], n: int = FINALISTS) -> list[Candidate]:
    """The candidates that get a short recovery, from ``ranked`` (best masked first): the best masked plan, the best
    plan with the largest share of whole layers scored (layers only, ShortGPT's shape, where whole layers reach the
    ratio), then the rest by masked rank, one per distinct shares, up to ``n``.

    Masked loss misjudges shapes, not widths: a cut of whole layers recovers far better than its masked loss says
    (SmolLM2-135M at 2x, seed 456: layers-only masked 510 against the mixed plan's 289, and ranked 9th, so the three
    finalists were one mix in three width profiles; at 1.5x ShortGPT's layers-only plan beat auto). So the short
    recovery compares different mixes of granularities, not three profiles of one."""
    if not ranked:
        return []
    pool = [ranked[0]]
    layer_share = lambda c: c.what.get("shares", {}).get("layers", 0.0)  # noqa: E731
    most = max(layer_share(c) for c in ranked)
    heaviest = next(c for c in ranked if layer_share(c) == most)  # the best of the most layer-heavy shares scored
    if most > 0 and heaviest is not ranked[0] and n > 1:
        pool.append(heaviest)
    shares = lambda c: tuple(sorted(c.what.get("shares", {}).items()))  # noqa: E731
    for c in ranked:
        if len(pool) >= n:
            break
        if all(shares(c) != shares(p) for p in pool):
            pool.append(c)
    pool += [c for c in ranked if c not in pool][:n - len(pool)]  # fewer distinct shares than n: other profiles
    return pool


def _finalists(ctx: Ctx, ranked: list[Candidate], short: int, base: RecoveryConfig, teacher) -> Candidate:
    """Successive halving's last rung: the best masked candidates of different shapes (:func:`finalist_pool`) each
    get a short recovery (the start recipe); the lowest validation loss after it wins."""
    if short <= 0:
        _decide(ctx, "plan", ranked[0].id, "no recovery budget: the lowest masked validation loss")
        return ranked[0]
    rows = []
    for c in finalist_pool(ranked):
        if rows and not ctx.budget.can():
            break
        t0 = time.perf_counter()
        m = _recovered_copy(ctx, c.plan, START_RECIPE, short, base, teacher)
        val, key = evaluate_val(ctx, m)
        del m
        rows.append((_add(ctx, "finalist", {"candidate": c.id, "shares": c.what["shares"],
                                            "profile": c.what["profile"], "recovery_steps": short},
                          val, key, c.ratio, t0, c.plan), c))
    best, src = min(rows, key=lambda r: r[0].key)
    _decide(ctx, "plan", src.id,
            f"{_best(ctx)} validation {ctx.task.metric} after a {short}-step recovery among {len(rows)} finalist(s) "
            f"({best.val:.4g}; masked {src.val:.4g}; others: "
            + ", ".join(f"#{s.id} {r.val:.4g}" for r, s in sorted(rows, key=lambda r: r[0].key) if s is not src) + ")")
    return best


def _recipes(ctx: Ctx, plan: PruningPlan, first: Candidate, short: int, base: RecoveryConfig, teacher) -> dict:
    """Coordinate descent over the recovery recipe from START_RECIPE, each variant a short recovery of the plan."""
    best, best_key, best_val = dict(START_RECIPE), first.key, first.val
    split_ok = not split_plan(plan)[0].is_empty() and not split_plan(plan)[1].is_empty()
    axes = [("targets", ["attention"]), ("lr", [5e-4, 2e-3]), ("rank", [4, 16]), ("method", ["distill"]),
            ("schedule", ["split"] if split_ok else [])]
    tried = [{"recipe": dict(START_RECIPE), "val": first.val}]
    for axis, values in axes:
        for v in values:
            if not ctx.budget.can():
                break
            r = {**best, axis: v}
            t0 = time.perf_counter()
            m = _recovered_copy(ctx, plan, r, short, base, teacher if r["method"] == "distill" else None)
            val, key = evaluate_val(ctx, m)
            del m
            _add(ctx, "recipe", {"recipe": r, "recovery_steps": short}, val, key, _ratio_of(ctx, plan), t0)
            tried.append({"recipe": r, "val": val})
            if key < best_key:
                best, best_key, best_val = r, key, val
    why = (f"{_best(ctx)} validation {ctx.task.metric} after {short}-step recoveries of the chosen plan "
           f"({best_val:.4g}) among {len(tried)} recipe(s)")
    if not split_ok:
        why += "; split schedule not tried (the plan has one part only)"
    _decide(ctx, "recovery", best, why)
    return best


# -- the engine -------------------------------------------------------------------------------

@dataclass
class AutoResult:
    model: nn.Module
    plan: PruningPlan
    log: dict
    ratio_target: float
    ratio_achieved: float
    val: float


def search(model: nn.Module, task, ratio: float | None = None, *, budget: str | int = "24", layout: str = "nonuniform",
           max_loss: float | None = None, recovery: RecoveryConfig | None = None,
           calibration: CalibrationConfig | None = None, seed: int = 42, protect_ends: bool = True,
           max_channel_fraction: float = 0.97, sia: str = "measure", progress: bool = False) -> AutoResult:
    """Compress ``model`` in place for ``task`` to ``ratio`` (or the most within ``max_loss``), deciding on
    validation only; see the module docstring. ``recovery``: the full recovery budget and its fixed settings
    (batch size, device, keep); the search picks method, targets, rank, lr and schedule."""
    if layout not in ("nonuniform", "uniform"):
        raise CascadePruneError(f"layout {layout!r}: choose nonuniform or uniform")
    if (ratio is None) == (max_loss is None):
        raise CascadePruneError("method auto needs a ratio or a max_loss (one of them)")
    recovery = recovery or RecoveryConfig(steps=0, method="none")
    calibration = calibration or CalibrationConfig()
    b = Budget(budget)
    if max_loss is not None:
        return _max_loss(model, task, max_loss, b, layout, recovery, calibration, seed, protect_ends,
                         max_channel_fraction, sia, progress)
    check_feasible(model, ratio, layout, protect_ends, max_channel_fraction)  # before any compute
    return _search(model, task, ratio, b, layout, recovery, calibration, seed, protect_ends, max_channel_fraction,
                   sia, progress)


def short_steps(full: int) -> int:
    """A short recovery's steps: a quarter of a step budget (at least 2); 8 where the budget is in epochs."""
    return max(2, round(full * SHORT_FRACTION)) if full > 0 else (8 if full < 0 else 0)


def _full_steps(recovery: RecoveryConfig) -> int:
    if recovery.method == "none":
        return 0
    if recovery.steps is not None:
        return recovery.steps
    return 0 if not recovery.epochs else -1  # epochs: the task decides; -1 marks "use the config as it is"


def _search(model, task, ratio, b: Budget, layout, recovery, calibration, seed, protect_ends, max_fraction, sia,
            progress, batches=None, dense=None, seeds=()) -> AutoResult:
    t_all = time.perf_counter()
    ctx = Ctx(model, task, ratio, layout, b, seed, protect_ends, max_fraction, progress)
    ctx.seeds = seeds
    ctx.dense_blocks = dense_block_params(model)
    ctx.target = round(ctx.dense_blocks / ratio)
    ctx.granularities = tuple(allowed_granularities(model))
    model.eval()
    if batches is None:
        batches = task.calibration_batches(calibration.mix, calibration.n, calibration.batch_size,
                                           seed if calibration.seed is None else calibration.seed)
    if dense is None:
        dense = evaluate_val(ctx, model, count=False)
    ctx.dense_val, ctx.dense_key = dense
    _statistics(ctx, batches)
    sia_rows = _sia(ctx, batches, sia)
    _apply_sia(ctx, sia_rows)
    _criteria(ctx)
    full = _full_steps(recovery)
    short = short_steps(full)
    reserve = min(FINALISTS + 6, int(b.left() * RESERVE_SHARE)) if short and b.kind == "evals" else 0  # finalists and recipes keep their share of the budget
    ranked = _allocation(ctx, reserve)
    teacher = copy.deepcopy(model).eval() if short else None
    win = _finalists(ctx, ranked, short, recovery, teacher)
    plan = win.plan
    if short:
        recipe = _recipes(ctx, plan, win, short, recovery, teacher)
    else:
        recipe = {**START_RECIPE, "method": "none"}
        _decide(ctx, "recovery", recipe, "no recovery budget (recovery method none or 0 steps)")
    search_s = b.elapsed()
    # the real thing: cut, and recover with the full budget and the chosen recipe
    t0 = time.perf_counter()
    teacher = teacher if recipe["method"] == "distill" else None
    if full < 0:  # an epoch budget: the recovery config as given, with the chosen recipe's settings, at the end
        apply_plan(model, plan, inplace=True)
        recs = [recover(model, task, recovery.model_copy(update={k: recipe[k] for k in ("method", "targets", "rank",
                                                                                       "lr")}),
                        seed=seed + 1, teacher=teacher, progress=progress)]
        recipe["schedule"] = "end"
    else:
        recs = cut_and_recover(model, task, plan, recipe, full, recovery, seed, teacher, progress=progress)
    final_val, final_key = evaluate_val(ctx, model, count=False)
    achieved = ctx.dense_blocks / block_params(model)
    del teacher
    log = _log(ctx, sia_rows, win, recipe, sum(r["steps"] for r in recs), final_val, achieved, search_s,
               time.perf_counter() - t0, time.perf_counter() - t_all)
    return AutoResult(model, applied_plan(resolve(model)), log, ratio, achieved, final_val)


def _shape(plan: PruningPlan, s) -> dict:
    kept = [l for l in s.layers if l.orig_index not in plan.layers]
    return {"layers_removed": sorted(plan.layers),
            "heads_per_layer": [len(l.heads) - len(plan.heads.get(l.orig_index, ())) for l in kept],
            "channels_per_layer": [len(l.channels) - len(plan.channels.get(l.orig_index, ())) for l in kept]}


def _log(ctx: Ctx, sia_rows, win: Candidate, recipe: dict, steps: int, final_val, achieved, search_s, final_s,
         total_s) -> dict:
    m = ctx.task.metric
    s = resolve(ctx.model)
    chosen = {"shares": win.what["shares"], "profile": win.what["profile"], "criteria": dict(ctx.criterion),
              "granularities": list(ctx.granularities), "recovery": recipe, "recovery_steps": steps,
              "shape": _shape(applied_plan(s), s)}
    summary = (f"auto at {ctx.ratio:g}x ({achieved:.3f}x achieved): granularities {', '.join(ctx.granularities)}; "
               f"criteria {', '.join(f'{g} {c}' for g, c in ctx.criterion.items())}; shares "
               f"{', '.join(f'{g} {v:g}' for g, v in win.what['shares'].items())}, widths {win.what['profile']}; "
               f"recovery {recipe['method']} on {recipe['targets']} (rank {recipe['rank']}, lr {recipe['lr']:g}, "
               f"{recipe['schedule']}), {steps} steps. Validation {m}: dense {ctx.dense_val:.4g}, final "
               f"{final_val:.4g}. {len(ctx.candidates)} candidates, {ctx.budget.evals} evaluations of the budget "
               f"{ctx.budget.spec} in {search_s:.0f} s of search.")
    return {"format": FORMAT, "metric": m, "split": "val", "ratio_target": ctx.ratio, "ratio_achieved": achieved,
            "layout": ctx.layout, "budget": ctx.budget.to_dict(), "dense_val": ctx.dense_val, "final_val": final_val,
            "sia": sia_rows, "skipped_criteria": getattr(ctx, "skipped_criteria", {}),
            "not_scored_criteria": getattr(ctx, "not_scored", {}),
            "candidates": [c.row() for c in ctx.candidates], "decisions": ctx.decisions, "chosen": chosen,
            # the finalists' plans (original indices), to reproduce or compare them
            "plans": {str(c.what["candidate"]): c.plan.to_dict() for c in ctx.candidates
                      if c.phase == "finalist" and c.plan is not None},
            "wall_s": {"statistics": round(getattr(ctx, "stats_s", 0.0), 2), "search": round(search_s, 2),
                       "final_cut_and_recovery": round(final_s, 2), "total": round(total_s, 2)},
            "summary": summary}


# -- max_loss: the most compression within a validation tolerance ------------------------------

def within(task, dense_val: float, val: float, max_loss: float) -> bool:
    """pp of accuracy lost (higher-is-better metrics), or the ratio to dense (perplexity), within max_loss."""
    if task.higher_is_better:
        return 100 * (dense_val - val) <= max_loss + 1e-9
    return val / dense_val <= max_loss + 1e-12


def loss_of(task, dense_val: float, val: float) -> float:
    return 100 * (dense_val - val) if task.higher_is_better else val / dense_val


def _max_loss(model, task, max_loss, b: Budget, layout, recovery, calibration, seed, protect_ends, max_fraction, sia,
              progress) -> AutoResult:
    """Walk up the ratios (each scored by a quick search: the best masked grid plan, short-recovered), bisect
    between the last within tolerance and the first beyond it, then run the full search at the largest within;
    if its final validation misses the tolerance, step back along the walked curve."""
    if not task.higher_is_better and max_loss <= 1:
        raise CascadePruneError(f"max_loss {max_loss:g}: for {task.metric} it is a ratio to dense, so it must be > 1")
    if block_params(model) != dense_block_params(model):
        raise CascadePruneError("method auto starts from a dense model; this one is already pruned")
    top = max_ratio(model, layout, protect_ends, max_fraction)
    dense_copy = copy.deepcopy(model)
    ctx0 = Ctx(model, task, 1.0, layout, b, seed, protect_ends, max_fraction, progress)
    batches = task.calibration_batches(calibration.mix, calibration.n, calibration.batch_size,
                                       seed if calibration.seed is None else calibration.seed)
    dense = evaluate_val(ctx0, model, count=False)
    short = short_steps(_full_steps(recovery))
    curve = []

    def probe(r: float) -> dict:
        ctx = Ctx(model, task, r, layout, b, seed, protect_ends, max_fraction, progress)
        ctx.dense_blocks, ctx.target = dense_block_params(model), round(dense_block_params(model) / r)
        ctx.granularities = tuple(allowed_granularities(model))
        if not hasattr(probe, "scores"):
            _statistics(ctx, batches)
            probe.scores = ctx.scores
        ctx.scores = probe.scores
        for g in ctx.granularities:  # the quick probe uses each granularity's first-listed default
            ctx.criterion[g] = next(c for c in ("lcr", "taylor", "wanda_sp") if (g, c) in ctx.scores) \
                if any((g, c) in ctx.scores for c in ("lcr", "taylor", "wanda_sp")) else \
                next(c for gg, c in ctx.scores if gg == g)
        t0 = time.perf_counter()
        best = None
        gs = ctx.granularities
        options = [{g: float(g == h) for g in gs} for h in gs]  # each granularity alone, and depth + width halves
        if "layers" in gs and "channels" in gs:
            options.append({g: {"layers": 0.5, "channels": 0.5}.get(g, 0.0) for g in gs})
        for shares in options:
            plan = build_plan(ctx, shares, "uniform" if layout == "uniform" else "global")
            if plan is None:
                continue
            val, key = evaluate_val(ctx, model, plan)
            if best is None or key < best[1]:
                best = (val, key, plan, shares, dict(ctx.criterion))
        if best is None:
            return {"ratio": r, "val": None, "within": False, "wall_s": round(time.perf_counter() - t0, 2)}
        val = best[0]
        if short:
            m = copy.deepcopy(model)
            cut_and_recover(m, task, best[2], START_RECIPE, short, recovery, seed, keep="last")
            val, _ = evaluate_val(ctx, m)
            del m
        row = {"ratio": r, "val": val, "loss": loss_of(task, dense[0], val), "within": within(task, dense[0], val,
                                                                                                max_loss),
               "shares": best[3], "recovery_steps": short, "wall_s": round(time.perf_counter() - t0, 2)}
        seeds[r] = (best[2], best[0], best[1], best[3], best[4])
        ctx.say(f"max-loss walk {r:g}x: val {task.metric} {val:.4g} ({'within' if row['within'] else 'beyond'})")
        return row

    ok, bad, seeds = None, None, {}
    for r in RATIO_WALK:
        if r > top or b.spent(WALK_SHARE) or not b.can():
            break
        row = probe(r)
        curve.append(row)
        if row["within"]:
            ok = r
        else:
            bad = r
            break
    if ok is None:
        raise CascadePruneError(
            f"max_loss {max_loss:g}: no ratio from {RATIO_WALK[0]:g}x up keeps the validation {task.metric} within "
            f"it (at {RATIO_WALK[0]:g}x: {curve[0]['val'] if curve else 'not reached'}); allow a larger loss")
    hi = bad if bad is not None else min(top, ok * 1.5)
    for _ in range(2):  # bisection between the last within and the first beyond
        mid = round(math.sqrt(ok * hi), 3)
        if hi / ok < 1.05 or not b.can() or b.spent(WALK_SHARE + 0.1) or mid > top:
            break
        row = probe(mid)
        curve.append(row)
        if row["within"]:
            ok = mid
        else:
            hi = mid
    tried = sorted({c["ratio"] for c in curve if c["within"]}, reverse=True)
    for i, r in enumerate(tried):  # the full search at the largest ratio within; step back if its result misses
        m = model if i == 0 else copy.deepcopy(dense_copy)
        res = _search(m, task, r, b, layout, recovery, calibration, seed, protect_ends, max_fraction, sia, progress,
                      batches=batches, dense=dense, seeds=[seeds[r]] if r in seeds else [])
        if within(task, dense[0], res.val, max_loss) or r == tried[-1]:
            break
    del dense_copy
    res.log["max_loss"] = {"tolerance": max_loss, "unit": "pp accuracy" if task.higher_is_better else
                           f"{task.metric} ratio to dense", "dense_val": dense[0], "curve": curve,
                           "chosen_ratio": res.ratio_target, "final_loss": loss_of(task, dense[0], res.val),
                           "within": within(task, dense[0], res.val, max_loss)}
    res.log["summary"] = (f"max-loss {max_loss:g}: walked {len(curve)} ratios up to "
                          f"{max(c['ratio'] for c in curve):g}x; chose {res.ratio_target:g}x. " + res.log["summary"])
    if not res.log["max_loss"]["within"]:
        raise CascadePruneError(f"max_loss {max_loss:g}: even at {res.ratio_target:g}x the recovered model's "
                                f"validation {task.metric} is {res.val:.4g} (dense {dense[0]:.4g}); allow a larger loss")
    return res


# -- the engine's entry (methods/cascade.py dispatches here) ----------------------------------

def cut(model, batches, cfg, stage, target, seed, loss_fn) -> None:
    """The registry's cut signature; auto is not one cut but a search with its own recoveries, so
    ``methods.cascade.compress`` hands a run with method auto to :func:`compress` before any cut."""
    raise CascadePruneError("method auto runs through methods.cascade.compress (it searches and recovers itself)")


def compress(model: nn.Module, task, cfg, out, progress: bool = True) -> dict:
    """``compress()``'s answer for ``method: auto``: the searched model, a state like the other methods' (one
    stage, the final cut and recovery) and the decision log."""
    from cascadeprune.methods.cascade import summed_recovery
    from cascadeprune.memory import peak_rss_mb, process_peak_rss_mb, reset_peak_rss

    metric = task.metric
    dense_blocks = dense_block_params(model)
    a = cfg.auto
    if cfg.ratio:  # feasibility before anything is evaluated
        check_feasible(model, cfg.ratio, a.layout, cfg.protect_ends, cfg.max_channel_fraction)
    reset_peak_rss()
    t0 = time.perf_counter()
    test, val = task.evaluate(model, "test"), task.evaluate(model, "val")  # reported, never decided on
    state = {"config": cfg.to_dict(), "task": task.name, "metric": metric, "completed": -1, "stages": [],
             "dense": {"block_params": dense_blocks, metric: test[metric], f"val_{metric}": val[metric], "test": test}}
    res = search(model, task, cfg.ratio or None, budget=a.search_budget, layout=a.layout, max_loss=a.max_loss,
                 recovery=summed_recovery(cfg), calibration=cfg.calibration, seed=cfg.seed,
                 protect_ends=cfg.protect_ends, max_channel_fraction=cfg.max_channel_fraction, sia=a.sia,
                 progress=progress)
    small = res.model
    after = task.evaluate(small, "test")
    steps = res.log["chosen"]["recovery_steps"]
    state["stages"].append({
        "stage": 0, "granularity": "auto", "block_params_before": dense_blocks, "block_params": block_params(small),
        "ratio": res.ratio_achieved, f"{metric}_pruned": None, f"{metric}_recovered": after[metric],
        f"val_{metric}_pruned": None, f"val_{metric}_recovered": res.val, "test_pruned": None, "test_recovered": after,
        "prune_s": res.log["wall_s"]["search"], "recovery_steps": steps,
        "recovery_s": res.log["wall_s"]["final_cut_and_recovery"], "wall_s": round(time.perf_counter() - t0, 2),
        "peak_rss_mb": round(peak_rss_mb()), "process_peak_rss_mb": round(process_peak_rss_mb())})
    state["completed"] = 0
    state["plan"] = res.plan.to_dict()
    return {"model": small, "state": state, "ratio_target": res.ratio_target, "ratio_achieved": res.ratio_achieved,
            "auto": res.log}
