"""The empirical SIA check: do a model's units actually interact when removed?

The static check (:mod:`cascadeprune.sia.static`) reads the architecture; this one measures, on
calibration data, what the Structural Independence Assumption claims: that a unit's removal cost
does not depend on which other units go. Removal is masking (:func:`cascadeprune.surgery.mask_plan`,
tested equal to physical removal), and every evaluated set costs one pass over the calibration
batches. For one granularity (layers, heads or channels) it measures:

- **single-removal effects** ``δi = L(without i) − L(full)`` on a sample of units, drawn in
  clusters (whole KV groups, or a few units of one layer) so that pairs inside one cluster exist;
- **pair interactions** ``Iij = δij − δi − δj``, reported normalised by ``|δi| + |δj|`` and split
  into pairs *within* one KV group (heads of GQA), one layer (MHA heads, channels) or adjacent
  layers (layers), and pairs *across*;
- **set additivity** ``A(S) = ΔL(S) / Σ_{i∈S} δi`` for the set the criterion would remove at
  ``ratio`` and for random sets of the same size. ``A ≈ 1``: additive; ``A ≫ 1``: removals
  compound; ``A ≪ 1``: they overlap. When a set is larger than what was measured singly, ``Σδ`` is
  estimated as ``|S| ×`` the mean δ of a random sample of its units (``coverage`` says how much);
- **rank stability**: Kendall τ between the criterion's scores on two disjoint calibration halves
  (the noise floor) and between the dense scores and scores re-computed after half the budget is
  removed (over the units still there); and τ between the criterion and the measured δ.

A verdict per granularity (``holds`` / ``weak`` / ``violated``) follows from :data:`THRESHOLDS`,
beside the static verdict, with the advice it implies (per-component / grouped / iterative).

Example::

    from cascadeprune.tasks import get_task
    task = get_task("lm@seq=64", model, source="smollm2-135m")
    r = measure(model, task, "heads", units=48, pairs=48)
    r["verdict"], r["sets"]["criterion"]["A"]
"""

from __future__ import annotations

import contextlib
import itertools
import math
import random
import statistics
import logging
import sys
import time
from typing import Any

import torch
from torch import nn

from cascadeprune.accounting import block_params
from cascadeprune.arch.resolve import Structure, resolve
from cascadeprune.calib import collect
from cascadeprune.calib.collect import collect_ablation
from cascadeprune.errors import CascadePruneError
from cascadeprune.importance import check, score, spec
from cascadeprune.methods.select import select
from cascadeprune.plan import PruningPlan
from cascadeprune.sia.gradient import A_grad, I_grad, mask_gradients, single
from cascadeprune.sia.static import static_check
from cascadeprune.surgery.masking import mask_plan

log = logging.getLogger(__name__)
FORMAT = "cascadeprune-sia/1"
GRANULARITIES = ("layers", "heads", "channels")
DEFAULT_CRITERION = {"layers": "lcr", "heads": "wanda_sp", "channels": "wanda_sp"}

# The verdict's thresholds (also in the README). Each signal is graded holds / weak / violated and
# the granularity takes the worst grade.
THRESHOLDS = {
    # A(S) = ΔL(S) / Σδ for the criterion's set and the median random set
    "additive": (0.5, 1.5),  # holds inside this range
    "compounding": 3.0,  # violated above (removals cost 3x their summed single costs)
    # median |Iij| / (|δi| + |δj|) over pairs within one KV group / layer / adjacent layers
    "interaction_holds": 0.25,
    "interaction_violated": 0.5,
    # τ(halves) − τ(after half the budget is removed): how much more the ranking moves than noise
    "rank_drop_holds": 0.1,
    "rank_drop_violated": 0.3,
    # |Σδ| below this fraction of L(full): A is not computed (or +inf when ΔL(S) is above it); A < 0 is violated
    "negligible": 1e-4,
}
GRADES = ("holds", "weak", "violated")

Unit = tuple[int, int]  # (original layer, original head / channel); (layer, -1) for a layer


# -- units and masks --------------------------------------------------------------------------

def all_units(s: Structure, granularity: str) -> list[Unit]:
    if granularity == "layers":
        return [(l.orig_index, -1) for l in s.layers]
    if granularity == "heads":
        return [(l.orig_index, h) for l in s.layers for h in l.heads]
    if granularity == "channels":
        return [(l.orig_index, c) for l in s.layers for c in l.channels]
    raise CascadePruneError(f"granularity {granularity!r}: choose one of {', '.join(GRANULARITIES)}")


def plan_of(granularity: str, units) -> PruningPlan:
    if granularity == "layers":
        return PruningPlan(layers={u[0] for u in units})
    d: dict[int, set[int]] = {}
    for layer, i in units:
        d.setdefault(layer, set()).add(i)
    return PruningPlan(heads=d) if granularity == "heads" else PruningPlan(channels=d)


def units_of(granularity: str, plan: PruningPlan) -> list[Unit]:
    if granularity == "layers":
        return sorted((i, -1) for i in plan.layers)
    d = plan.heads if granularity == "heads" else plan.channels
    return sorted((layer, i) for layer, v in d.items() for i in v)


def label(u: Unit, granularity: str) -> str:
    return f"L{u[0]}" if granularity == "layers" else f"L{u[0]}.{granularity[0]}{u[1]}"


def cluster_of(s: Structure, granularity: str, u: Unit) -> tuple:
    """Units with the same key are 'within' one another: a KV group (GQA heads), a layer (MHA heads,
    channels); layers use adjacency instead (see :func:`near`)."""
    if granularity == "heads" and s.dims.group_size > 1:
        return (u[0], u[1] // s.dims.group_size)
    return (u[0],)


def within_name(s: Structure, granularity: str) -> str:
    if granularity == "layers":
        return "adjacent layers"
    if granularity == "heads" and s.dims.group_size > 1:
        return "one KV group"
    return "one layer"


def near(s: Structure, granularity: str, a: Unit, b: Unit) -> bool:
    if granularity == "layers":
        pos = {l.orig_index: p for p, l in enumerate(s.layers)}
        return abs(pos[a[0]] - pos[b[0]]) == 1
    return cluster_of(s, granularity, a) == cluster_of(s, granularity, b)


# -- measurement ------------------------------------------------------------------------------

class _Evaluator:
    """L(model with a set of units masked), one pass over the calibration batches, memoised.

    Masking units of layer l changes nothing before l, so every layer's output on the full model is kept
    once and the layers before the first masked one return it instead of computing (about half the work
    of single and pair removals). A self-check at start compares that shortcut with the full pass and
    turns it off if they differ."""

    def __init__(self, model: nn.Module, task, batches: list, granularity: str, progress: bool,
                 cache: dict | None = None):
        self.model, self.task, self.batches, self.g = model, task, batches, granularity
        self.cache: dict[frozenset, float] = cache if cache is not None else {}
        self.progress = progress
        self.t0 = time.perf_counter()
        self.layers = [l.module for l in resolve(model).layers]
        self.pos = {l.orig_index: p for p, l in enumerate(resolve(model).layers)}
        self.outputs: list[list] | None = None
        self.batch = 0

    @torch.no_grad()
    def _pass(self, units: frozenset, skip_below: int = 0) -> float:
        ctx = mask_plan(self.model, plan_of(self.g, units)) if units else contextlib.nullcontext()
        total = 0.0
        try:
            for p in range(skip_below if self.outputs is not None else 0):
                self.layers[p].forward = (lambda p: lambda *a, **k: self.outputs[self.batch][p])(p)
            with ctx:
                for i, b in enumerate(self.batches):
                    self.batch = i
                    total += float(self.task.loss(self.model, b))
        finally:
            for layer in self.layers:
                layer.__dict__.pop("forward", None)
        return total / len(self.batches)

    @torch.no_grad()
    def base(self) -> float:
        """L(full), recording every layer's output per batch for the shortcut, then the self-check."""
        outs: list[list] = [[None] * len(self.layers) for _ in self.batches]
        hooks = [m.register_forward_hook((lambda p: lambda mod, a, o: outs[self.batch].__setitem__(p, o))(p))
                 for p, m in enumerate(self.layers)]
        try:
            full = self._pass(frozenset())
        finally:
            for h in hooks:
                h.remove()
        self.cache.setdefault(frozenset(), full)
        probe = all_units(resolve(self.model), self.g)[-1]  # a unit of the last layer: the longest shortcut
        plain = self._pass(frozenset([probe]))
        self.outputs = outs
        try:
            quick = self._pass(frozenset([probe]), self.pos[probe[0]])
        except (TypeError, ValueError, IndexError, RuntimeError) as e:
            # a family whose later layers cannot take the replayed outputs (signature, tuple shape, tensor
            # shape): compute everything, and say so; anything else is a bug and propagates
            log.warning("sia %s: the layer-output shortcut does not replay on this model (%s: %s); every "
                        "evaluation runs the full model", self.g, type(e).__name__, str(e).splitlines()[0][:200])
            quick = math.nan
        if not abs(quick - plain) <= 1e-6 * max(1.0, abs(plain)):
            self.outputs = None
        return self.cache[frozenset()]

    def __call__(self, units) -> float:
        key = frozenset(units)
        if key not in self.cache:
            first = min((self.pos[u[0]] for u in key), default=0)
            self.cache[key] = self._pass(key, first)
            n = len(self.cache)
            if self.progress and n % 10 == 0:
                print(f"  sia {self.g}: {n} evaluations, {time.perf_counter() - self.t0:.0f} s", file=sys.stderr,
                      flush=True)
        return self.cache[key]


def _scores(model, batches, task, granularity: str, criterion: str, mode: str, seed: int) -> dict:
    needs = spec(granularity, criterion)  # what the criterion declares it needs, as the engine reads it
    stats = collect(model, batches, loss_fn=task.loss, gradients=needs.gradients)
    if needs.ablation:
        collect_ablation(model, batches, task.loss, stats)
    return score(granularity, criterion, stats, mode=mode, seed=seed)


def flat_scores(s: Structure, granularity: str, scores: dict) -> dict[Unit, float]:
    """Scores keyed by unit (original indices); +inf (protected) units are left out."""
    out = {}
    for l in s.layers:
        v = scores[l.orig_index]
        if granularity == "layers":
            pairs = [((l.orig_index, -1), float(v))]
        else:
            idx = l.heads if granularity == "heads" else l.channels
            pairs = [((l.orig_index, i), float(x)) for i, x in zip(idx, torch.as_tensor(v).tolist())]
        out.update((u, x) for u, x in pairs if math.isfinite(x))
    return out


def kendall(a: dict, b: dict, keys=None) -> float | None:
    from scipy.stats import kendalltau

    keys = [k for k in (keys if keys is not None else a) if k in a and k in b]
    if len(keys) < 3:
        return None
    x, y = [a[k] for k in keys], [b[k] for k in keys]
    if len(set(x)) < 2 or len(set(y)) < 2:
        return 1.0 if x == y else None  # a constant ranking: identical, or undefined
    t = kendalltau(x, y).statistic
    return None if t != t else float(t)


def _sample_clustered(s, granularity, units: list[Unit], n: int, rng: random.Random) -> list[Unit]:
    """``n`` units (all when ``n`` covers them) in clusters of up to ``per`` so that 'within' pairs exist."""
    if n >= len(units):
        return list(units)
    if granularity == "layers":
        return sorted(rng.sample(units, n))
    per = min(s.dims.group_size, 4) if granularity == "heads" and s.dims.group_size > 1 else 4
    clusters: dict[tuple, list[Unit]] = {}
    for u in units:
        clusters.setdefault(cluster_of(s, granularity, u), []).append(u)
    keys = list(clusters)
    rng.shuffle(keys)
    out: list[Unit] = []
    for k in itertools.cycle(keys):
        left = [u for u in clusters[k] if u not in out]
        out += rng.sample(left, min(per, len(left), n - len(out)))
        if len(out) >= n:
            break
    return sorted(out)


def _pick_pairs(s, granularity, sample: list[Unit], n: int, rng: random.Random) -> list[tuple[Unit, Unit]]:
    """Up to ``n`` pairs of sampled units, half within one cluster and half across (all when ``n`` covers them)."""
    every = list(itertools.combinations(sample, 2))
    if n >= len(every):
        return every
    within = [p for p in every if near(s, granularity, *p)]
    across = [p for p in every if not near(s, granularity, *p)]
    k = min(len(within), n // 2)
    picked = rng.sample(within, k) + rng.sample(across, min(len(across), n - k))
    return sorted(picked)


def _summary(xs: list[float]) -> dict:
    if not xs:
        return {"n": 0}
    q = sorted(xs)
    return {"n": len(xs), "median": statistics.median(q), "mean": statistics.fmean(q),
            "p90": q[min(len(q) - 1, int(0.9 * len(q)))], "max": q[-1], "min": q[0]}


def _additivity(ev: _Evaluator, units: list[Unit], delta: dict[Unit, float], base: float) -> dict:
    """ΔL(S), Σδ over S (exact, or |S| x the mean of the measured units with its standard error), and A.

    A is graded only when it is determined: Σδ at least two standard errors (and the negligible floor) from 0."""
    measured = [delta[u] for u in units if u in delta]
    dl = ev(units) - base
    k, n = len(measured), len(units)
    if k == n:
        sum_delta, se = sum(measured), 0.0
    elif k:
        sd = statistics.stdev(measured) if k > 1 else math.inf
        sum_delta = n * statistics.fmean(measured)
        se = n * sd / math.sqrt(k) * math.sqrt(1 - k / n)  # finite-population correction
    else:
        sum_delta, se = float("nan"), math.inf
    floor = THRESHOLDS["negligible"] * abs(base)
    if abs(sum_delta) <= floor:  # the singles predict nothing: A is undefined, or infinite if the set costs
        A = math.inf if dl > floor else None
    else:
        A = dl / sum_delta  # negative: the singles and the set disagree on the sign
    determined = k == n or abs(sum_delta) > 2 * se
    return {"units": n, "delta_loss": dl, "sum_delta": sum_delta, "sum_delta_se": se, "coverage": k / max(n, 1),
            "A": A, "determined": determined}


def measure(model: nn.Module, task, granularity: str, criterion: str | None = None, mode: str = "grouped",
            ratio: float = 1.1, units: int = 64, pairs: int = 64, random_sets: int = 3, n: int = 16,
            batch_size: int = 8, seed: int = 42, mix: dict | None = None, progress: bool = False,
            batches: list | None = None, cache: dict | None = None) -> dict:
    """Measure the SIA for one granularity on ``task``'s calibration data (see the module docstring).

    ``units``: units in the clustered sample whose single removal is measured; each removal set adds up to
    ``max(8, units // 4)`` of its own units (``single.sampled`` vs ``single.measured`` in the answer);
    ``pairs``: pairs among them; ``ratio``: the compression ratio whose criterion set is tested;
    ``n`` calibration windows in batches of ``batch_size`` (or ``batches`` given directly). ``cache``: losses
    of masked sets from an earlier call on the same model and batches (several criteria share their singles)."""
    t0 = time.perf_counter()
    criterion = criterion or DEFAULT_CRITERION[granularity]
    if granularity not in GRANULARITIES:
        raise CascadePruneError(f"granularity {granularity!r}: choose one of {', '.join(GRANULARITIES)}")
    try:
        check(granularity, criterion, mode)
    except ValueError as e:
        raise CascadePruneError(str(e)) from e
    if units < 2 or pairs < 0 or random_sets < 0 or ratio <= 1:
        raise CascadePruneError(f"need units >= 2, pairs >= 0, random sets >= 0 and ratio > 1 "
                                f"(got units {units}, pairs {pairs}, random sets {random_sets}, ratio {ratio})")
    if batches is None:
        if n < 2 * batch_size:
            raise CascadePruneError(f"{n} calibration windows in batches of {batch_size}: need at least two batches "
                                    "(the rank check splits them in halves)")
        batches = task.calibration_batches(mix, n, batch_size, seed)
    if len(batches) < 2:
        raise CascadePruneError("need at least two calibration batches (the rank check splits them in halves)")
    model.eval()
    s = resolve(model)
    rng, rng_sets = random.Random(seed), random.Random(seed + 1)  # the unit sample never depends on the criterion
    pool = all_units(s, granularity)
    ev = _Evaluator(model, task, batches, granularity, progress, cache)
    base = ev.base()

    # criterion scores on the dense model, and on two disjoint halves of the calibration data
    half = len(batches) // 2
    raw = _scores(model, batches, task, granularity, criterion, mode, seed)
    dense = flat_scores(s, granularity, raw)
    halves = [flat_scores(s, granularity, _scores(model, b, task, granularity, criterion, mode, seed))
              for b in (batches[:half], batches[half:])]

    # the sets: the criterion's at `ratio`, random ones of the same size
    budget = round(block_params(model) * (1 - 1 / ratio))
    crit_set = units_of(granularity, select(granularity, s, raw, budget, mode=mode))
    rand_sets = [sorted(rng_sets.sample(pool, len(crit_set))) for _ in range(random_sets)] if crit_set else []

    # single removals: a clustered sample, then a sample of each set's units
    sample = _sample_clustered(s, granularity, pool, units, rng)
    chosen_pairs = _pick_pairs(s, granularity, sample, pairs, rng)
    measured = list(sample)
    per_set = max(8, units // 4)
    for st in [crit_set, *rand_sets]:  # all of a set's units when few are missing, else a random sample
        left = [u for u in st if u not in set(measured)]
        measured += left if len(left) <= per_set else random.Random(f"{seed}{sorted(st)[:3]}").sample(left, per_set)
    delta = {u: ev((u,)) - base for u in measured}

    # pairs within the clustered sample
    pair_rows = []
    for a, b in chosen_pairs:
        I = ev((a, b)) - base - delta[a] - delta[b]
        den = abs(delta[a]) + abs(delta[b])
        pair_rows.append({"a": label(a, granularity), "b": label(b, granularity), "within": near(s, granularity, a, b),
                          "I": I, "I_norm": I / den if den > 0 else None})
    norm = lambda rows: [abs(r["I_norm"]) for r in rows if r["I_norm"] is not None]  # noqa: E731
    within_rows = [r for r in pair_rows if r["within"]]
    across_rows = [r for r in pair_rows if not r["within"]]

    sets = {"ratio": ratio, "params_to_remove": budget, "criterion": None, "random": []}
    if crit_set:
        sets["criterion"] = _additivity(ev, crit_set, delta, base)
        per_layer: dict[str, int] = {}
        for u in crit_set:
            per_layer[str(u[0])] = per_layer.get(str(u[0]), 0) + 1
        sets["criterion"]["per_layer"] = per_layer  # where the criterion's cut falls
        sets["random"] = [_additivity(ev, r, delta, base) for r in rand_sets]

    # re-scoring after half the budget is removed (masked), over the units still there
    half_set = units_of(granularity, select(granularity, s, raw, budget // 2, mode=mode)) if budget > 1 else []
    rank: dict[str, Any] = {"tau_halves": kendall(*halves), "weight_only": spec(granularity, criterion).weight_only}
    if half_set:
        with mask_plan(model, plan_of(granularity, half_set)):
            again = flat_scores(s, granularity, _scores(model, batches, task, granularity, criterion, mode, seed))
        rest = [u for u in dense if u not in set(half_set)]
        rank["tau_rescore"] = kendall(dense, again, rest)
        k = max(0, len(crit_set) - len(half_set))
        if k:
            low = lambda sc: set(sorted((u for u in rest if u in sc), key=lambda u: (sc[u], u))[:k])  # noqa: E731
            rank["rescore_bottom_overlap"] = len(low(dense) & low(again)) / k
        rank["removed_first"] = len(half_set)
    rank["tau_criterion_vs_delta"] = kendall(dense, delta)
    gradient = None if granularity == "layers" else _gradient_estimate(
        mask_gradients(model, task, batches, granularity), delta, chosen_pairs, pair_rows, sets,
        crit_set, rand_sets)

    out = {
        "granularity": granularity, "criterion": criterion, "mode": mode, "units_total": len(pool),
        "within": within_name(s, granularity), "loss_full": base,
        "single": {**_summary(list(delta.values())), "measured": len(delta), "sampled": len(sample),
                   "negative": sum(d < 0 for d in delta.values()),
                   "largest": [{"unit": label(u, granularity), "delta": d} for u, d in
                               sorted(delta.items(), key=lambda kv: -kv[1])[:5]],
                   "deltas": {label(u, granularity): d for u, d in sorted(delta.items())}},
        "pairs": {"within": _summary(norm(within_rows)), "across": _summary(norm(across_rows)),
                  "top": sorted((r for r in pair_rows if r["I_norm"] is not None),
                                key=lambda r: -abs(r["I"]))[:5]},
        "sets": sets, "rank": rank, "gradient": gradient,
        "evaluations": len(ev.cache), "replayed_prefix": ev.outputs is not None,
        "wall_s": time.perf_counter() - t0,
        "static": static_for(s, granularity),
    }
    out.update(verdict(out))
    return jsonable(out)


def _gradient_estimate(g: dict, delta: dict, chosen_pairs: list, pair_rows: list, sets: dict, crit_set: list,
                       rand_sets: list) -> dict:
    """The gradient-only estimate (:mod:`cascadeprune.sia.gradient`) of what was just measured, and how well
    the two agree: Kendall τ of the single costs and of the pairs' abs(normalised interaction), and the share
    of graded sets whose A both grade alike (holds / weak / violated)."""
    est = [I_grad(g, a, b) for a, b in chosen_pairs]
    both = [(abs(r["I_norm"]), abs(e)) for r, e in zip(pair_rows, est) if r["I_norm"] is not None and e is not None]
    within = [abs(e) for r, e in zip(pair_rows, est) if e is not None and r["within"]]
    across = [abs(e) for r, e in zip(pair_rows, est) if e is not None and not r["within"]]
    rows = []
    for kind, units, exact in [("criterion", crit_set, sets.get("criterion")),
                               *[("random", r, x) for r, x in zip(rand_sets, sets.get("random", []))]]:
        if exact is not None:
            rows.append({"set": kind, "units": len(units), "A": exact["A"], "A_grad": A_grad(g, units),
                         "graded": bool(exact.get("determined", True))})
    graded = [r for r in rows if r["graded"] and isinstance(r["A"], (int, float)) and r["A_grad"] is not None]
    n = next(iter(g.values())).shape[0] if g else 0
    return {
        "windows": n,
        "tau_single_vs_delta": kendall({u: single(g, u) for u in delta}, delta),
        "pairs": {"within": _summary(within), "across": _summary(across)},
        "tau_pairs_vs_exact": kendall(dict(enumerate(x for x, _ in both)), dict(enumerate(y for _, y in both))),
        "sets": rows,
        "A_grade_agreement": (sum(_grade_A(r["A"]) == _grade_A(r["A_grad"]) for r in graded) / len(graded)
                              if graded else None),
    }


def jsonable(x):
    """Strict JSON: non-finite floats become the strings "inf", "-inf", "nan" (A is +inf when Σδ ≈ 0 < ΔL)."""
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if x != x else ("inf" if x > 0 else "-inf")
    return x


def static_for(s: Structure, granularity: str) -> dict:
    """The static check's answer for one granularity: heads read D, channels the gate; layers it does not cover."""
    v = static_check(s)
    if granularity == "heads":
        return {"verdict": "violated" if v.group_size > 1 else "holds", "why": f"D = {v.group_size}"}
    if granularity == "channels":
        return {"verdict": "violated" if v.gated_ffn else "holds", "why": "gated FFN" if v.gated_ffn else "ungated FFN"}
    return {"verdict": "n/a", "why": "the static check covers heads and channels only"}


# -- the verdict ------------------------------------------------------------------------------

def _grade_A(A) -> str:
    lo, hi = THRESHOLDS["additive"]
    if A is None or lo <= A <= hi:
        return "holds"
    return "violated" if A > THRESHOLDS["compounding"] or A < 0 else "weak"


def verdict(r: dict) -> dict:
    """Grade each signal, take the worst, and say what to do about it."""
    T, signals, undetermined = THRESHOLDS, [], []
    sets = r["sets"]
    if sets["criterion"] is not None:
        c = sets["criterion"]
        if c["determined"]:
            signals.append((_grade_A(c["A"]), f"criterion set A = {_fmt(c['A'])}", "additivity"))
        rand = [x["A"] for x in sets["random"] if x["A"] is not None and x["determined"]]
        if rand:
            med = statistics.median(rand)
            signals.append((_grade_A(med), f"median A of {len(rand)} random set(s) = {_fmt(med)}", "additivity"))
        if not c["determined"] or len(rand) < len(sets["random"]):
            undetermined.append("Σδ of a set is within 2 standard errors of 0 (not graded; more --units narrows it)")
    within = r["pairs"]["within"]
    if within.get("n"):
        m = within["median"]
        g = "holds" if m <= T["interaction_holds"] else "violated" if m > T["interaction_violated"] else "weak"
        signals.append((g, f"median |I|/(|δi|+|δj|) within {r['within']} = {m:.2f}", "interaction"))
    rk = r["rank"]
    if not rk["weight_only"] and rk.get("tau_rescore") is not None and rk.get("tau_halves") is not None:
        drop = rk["tau_halves"] - rk["tau_rescore"]
        g = "holds" if drop <= T["rank_drop_holds"] else "violated" if drop > T["rank_drop_violated"] else "weak"
        signals.append((g, f"rank τ falls {drop:+.2f} beyond the halves' noise floor after half the cut", "rank"))
    worst = max((GRADES.index(g) for g, _, _ in signals), default=0)
    grade = GRADES[worst]
    failing = {kind for g, _, kind in signals if g != "holds"}
    advice = {
        "holds": "per-component criteria are reliable here: score units one by one and remove the set in one shot.",
    }.get(grade)
    if advice is None:
        steps = []
        if "interaction" in failing:
            steps.append("score structurally valid groups jointly (mode grouped: whole KV groups or equal heads per "
                         "group; gate+up+down per channel)")
        if "additivity" in failing:
            steps.append("remove the set in several smaller steps" + (" with recovery between them"
                                                                      if grade == "violated" else ""))
        if "rank" in failing or grade == "violated":
            steps.append("re-score between steps (iterative removal: a stage's `steps` > 1)")
        advice = ("; ".join(steps) or "prune in smaller steps") + "."
        if grade == "violated":
            advice = "per-component criteria are NOT reliable here: " + advice + \
                     " Or leave this granularity out of the recipe."
    return {"verdict": grade, "signals": [{"grade": g, "what": w} for g, w, _ in signals], "advice": advice,
            "not_graded": undetermined}


def _fmt(A) -> str:
    return "n/a (negligible)" if A is None else A if isinstance(A, str) else "inf" if A == math.inf else f"{A:.2f}"


# -- the report -------------------------------------------------------------------------------

def format_report(rep: dict) -> str:
    """Plain text for ``cascadeprune sia``."""
    st = rep["static"]
    lines = [f"sia {rep['model']} on {rep['task']}: {rep['calibration']['windows']} calibration windows in "
             f"{rep['calibration']['batches']} batches (seed {rep['calibration']['seed']}), loss {rep['loss_full']:.4f}",
             f"static SIA    {'HOLDS' if st['holds'] else 'VIOLATED'} (D = {st['group_size']}, "
             f"{'gated' if st['gated_ffn'] else 'ungated'} FFN)"]
    for g, r in rep["granularities"].items():
        sg, p, sets, rk = r["single"], r["pairs"], r["sets"], r["rank"]
        lines += ["", f"{g}: {r['units_total']} units; criterion {r['criterion']} ({r['mode']}); "
                      f"{r['evaluations']} evaluations in {r['wall_s']:.0f} s"]
        big = ", ".join(f"{x['unit']} {x['delta']:+.4f}" for x in sg["largest"][:3])
        extra = sg["measured"] - sg.get("sampled", sg["measured"])
        origin = f" ({sg['sampled']} in the --units sample + {extra} from the removal sets)" if extra > 0 else ""
        lines.append(f"  single removal  {sg['measured']} units{origin}: δ median {sg['median']:+.5f}, mean {sg['mean']:+.5f}, "
                     f"{sg['negative']} negative; largest {big}")
        for key, name in (("within", f"within {r['within']}"), ("across", "across")):
            x = p[key]
            lines.append(f"  pairs {name:<21} " + (f"{x['n']} pairs: median |I|/(|δi|+|δj|) {x['median']:.3f}, "
                                                  f"p90 {x['p90']:.3f}" if x.get("n") else "none measured"))
        c = sets["criterion"]
        if c is None:
            lines.append(f"  additivity      the criterion removes nothing at {sets['ratio']:g}x")
        else:
            rand = [float(x["A"]) for x in sets["random"] if x["A"] is not None]
            se = "" if c["coverage"] == 1 else f" ± {c['sum_delta_se']:.4f}"
            lines.append(f"  additivity      criterion set at {sets['ratio']:g}x ({c['units']} units): ΔL {c['delta_loss']:+.4f}"
                         f" vs Σδ {c['sum_delta']:+.4f}{se} (coverage {c['coverage']:.0%}) -> A = {_fmt(c['A'])}"
                         + ("" if c["determined"] else " (undetermined)"))
            if sets["random"]:
                lines.append(f"                  {len(sets['random'])} random sets of {c['units']}: A " +
                             ", ".join(_fmt(x["A"]) for x in sets["random"]) +
                             (f" (median {_fmt(statistics.median(rand))})" if rand else ""))
        t = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
        lines.append(f"  rank stability  τ halves {t(rk['tau_halves'])} (noise floor), τ after {rk.get('removed_first', 0)} "
                     f"removed {t(rk.get('tau_rescore'))}" + (" (weight-only criterion)" if rk["weight_only"] else "") +
                     f"; criterion vs measured δ τ {t(rk['tau_criterion_vs_delta'])}")
        gr = r.get("gradient")
        if gr:
            sets_txt = ", ".join(f"{x['set']} A {_fmt(x['A'])} ~ {_fmt(x['A_grad'])}" for x in gr["sets"])
            agree = gr["A_grade_agreement"]
            lines.append(f"  gradient est.   {gr['windows']} windows: pairs within median |I| "
                         f"{t(gr['pairs']['within'].get('median'))}, across {t(gr['pairs']['across'].get('median'))}; "
                         f"τ vs measured: singles {t(gr['tau_single_vs_delta'])}, pairs {t(gr['tau_pairs_vs_exact'])}")
            if sets_txt:
                lines.append(f"                  sets (measured ~ estimated): {sets_txt}; same A grade "
                             f"{'n/a' if agree is None else f'{agree:.0%}'} (not part of the verdict)")
        lines.append(f"  verdict         {r['verdict'].upper()} (static: {r['static']['verdict']}, {r['static']['why']})")
        for x in r["signals"]:
            lines.append(f"                  [{x['grade']}] {x['what']}")
        for x in r["not_graded"]:
            lines.append(f"                  [not graded] {x}")
        lines.append(f"  advice          {r['advice']}")
    return "\n".join(lines)


def sia_report(model: nn.Module, task, granularities=GRANULARITIES, model_name: str = "model",
               task_name: str | None = None, n: int = 16, batch_size: int = 8, seed: int = 42,
               mix: dict | None = None, criteria: dict | None = None, **kw) -> dict:
    """Every requested granularity on the same calibration batches; the JSON ``cascadeprune sia --json`` prints.

    ``criteria``: granularity -> criterion (default :data:`DEFAULT_CRITERION`); ``kw`` goes to :func:`measure`."""
    bad = [g for g in granularities if g not in GRANULARITIES]
    if bad:
        raise CascadePruneError(f"granularity {bad[0]!r}: choose one of {', '.join(GRANULARITIES)}")
    if n < 2 * batch_size:
        raise CascadePruneError(f"{n} calibration windows in batches of {batch_size}: need at least two batches "
                                "(the rank check splits them in halves)")
    from cascadeprune.sia.stored import fingerprint

    batches = task.calibration_batches(mix, n, batch_size, seed)
    st = static_check(resolve(model))
    out = {"format": FORMAT, "model": model_name, "task": task_name or getattr(task, "name", "task"),
           "fingerprint": fingerprint(model),  # `inspect MODEL --sia` checks a stored report against it
           "static": {"holds": st.holds, "group_size": st.group_size, "gated_ffn": st.gated_ffn,
                      "reasons": list(st.reasons)},
           "calibration": {"windows": n, "batch_size": batch_size, "batches": len(batches), "seed": seed,
                           "mix": mix},
           "thresholds": THRESHOLDS, "granularities": {}}
    for g in granularities:
        out["granularities"][g] = measure(model, task, g, criterion=(criteria or {}).get(g), seed=seed,
                                          batches=batches, **kw)
        out["loss_full"] = out["granularities"][g]["loss_full"]
    return out


def sia_workflow(model: str, task: str, granularities=GRANULARITIES, data_dir: str | None = None,
                 criterion: str | None = None, **kw) -> dict:
    """``cascadeprune sia``: the model saved in (or named by) ``model`` measured on ``task`` (``kw``: the keywords of
    :func:`sia_report`; ``criterion`` for the one granularity given), with the summary the issue's schema asks for
    (the static verdict and the headline statistics per granularity)."""
    from cascadeprune import load_model
    from cascadeprune.report.sia_report import with_summary
    from cascadeprune.tasks import get_task

    m = load_model(model)
    rep = sia_report(m, get_task(task, m, source=model, data_dir=data_dir), granularities, model_name=model,
                     task_name=task, criteria={granularities[0]: criterion} if criterion else None, **kw)
    return with_summary(rep)
