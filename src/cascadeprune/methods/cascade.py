"""The cascade engine: coarse-to-fine structured pruning with recovery between stages.

The engine knows the model's purpose only through a :class:`cascadeprune.task.Task` (calibration
batches, loss, evaluation, recovery steps), so the same code compresses a vibration classifier and a
causal LM. For each stage (default layers -> heads -> channels): collect calibration statistics on the
CURRENT model (already pruned and recovered), score, remove the stage's share of the parameter
budget in ``steps`` iterations (re-scoring in between), recover (LoRA merged back, full
fine-tuning, or distillation), evaluate, checkpoint. ``method: oneshot`` scores every
granularity once on the dense model, removes everything together, and recovers once with the
summed budget of all stages. A published baseline (``method: magnitude``, ``wanda-sp``, ``llm-pruner``, ``flap``,
``shortgpt``; ``methods/baselines/``) cuts once with its own criterion and schedule and recovers once with
that summed budget, or not at all where its authors do not fine-tune. ``method: simultaneous`` (an ablation) runs as many iterations as
there are stages, each removing a part of every granularity at once, with the stages' recoveries.

The budget is a compression ratio on transformer-block parameters: the stages remove
``share_i`` of (dense - dense / ratio) each; the last stage closes the remaining gap exactly
(coarse units never overshoot their share; any remainder is trimmed with FFN channels).

Example::

    task = get_task("lm:prose,code", model, source="smollm2-135m")     # cascadeprune.tasks
    result = compress(model, task, CompressConfig(ratio=1.5).check(), out="runs/lm1.5")
    result["ratio_achieved"]
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from pathlib import Path

import torch
from torch import nn

from cascadeprune.accounting import Shape, block_params, dense_block_params, predict_block_params
from cascadeprune.arch.resolve import resolve
from cascadeprune.calib import collect, collect_ablation
from cascadeprune.memory import peak_rss_mb, process_peak_rss_mb, reset_peak_rss
from cascadeprune.errors import CascadePruneError
from cascadeprune.importance import names, score, spec
from cascadeprune.methods.config import CompressConfig, StageConfig, check_task_options
from cascadeprune.methods.feasibility import RATIO_TOLERANCE, InfeasibleTargetError  # noqa: F401 (re-exported)
from cascadeprune.methods.registry import MethodSpec
from cascadeprune.methods.registry import get as get_method
from cascadeprune.methods.select import select
from cascadeprune.plan import PruningPlan, applied_plan
from cascadeprune.recovery import recover
from cascadeprune.surgery import apply_plan

STATE_FILE = "state.json"


# -- budget -----------------------------------------------------------------------------------

def _stage_goals(now: int, target: int, cfg: CompressConfig) -> list[int]:
    cum, out = 0.0, []
    for st in cfg.stages:
        cum += st.share
        out.append(round(now - (now - target) * cum))
    out[-1] = target
    return out


def stage_targets(model: nn.Module, cfg: CompressConfig) -> list[int]:
    """Block-parameter count to reach after each stage (the last one is the ratio's target)."""
    dense, now = dense_block_params(model), block_params(model)
    target = round(dense / cfg.ratio)
    if target >= now:
        raise CascadePruneError(f"the model already has {now:,} block params; ratio {cfg.ratio:g} asks for {target:,}")
    return _stage_goals(now, target, cfg)


# -- the cut, on a model (the run) or on a Shape (the plan) ------------------------------------
#
# The run and the dry run execute the SAME schedule below (stage goals, iterative steps, the last stage's
# channel trim, the joint cut) through the same ``select``; only the scores differ: the run scores units on
# calibration data, the planner gives every unit the same placeholder score (protected layers +inf, as the
# layer criteria do). What a stage removes depends on unit costs and limits, not on which units score lowest,
# so the plan predicts every stage's cut exactly; the one exception is a GQA heads stage, whose greedy choice
# between whole KV groups and one head per group depends on the scores (it differs by less than one unit).

class _ModelCut:
    """The run: scores from calibration statistics, plans applied to the weights."""

    def __init__(self, model: nn.Module, batches, loss_fn, protect_ends: bool):
        self.model, self.batches, self.loss_fn, self.protect_ends = model, batches, loss_fn, protect_ends

    @property
    def shape(self):
        return resolve(self.model)

    def block_params(self) -> int:
        return block_params(self.model)

    def predict(self, plan: PruningPlan) -> int:
        return predict_block_params(self.model, plan)

    def scores(self, stage: StageConfig, seed: int, granularity: str | None = None):
        return stage_scores(self.model, self.batches, stage, seed, self.protect_ends, self.loss_fn, granularity)[1]

    def apply(self, plan: PruningPlan) -> None:
        apply_plan(self.model, plan, inplace=True)


class _ShapeCut:
    """The plan: placeholder scores, plans applied to a :class:`~cascadeprune.accounting.Shape`."""

    def __init__(self, shape: Shape, protect_ends: bool):
        self.shape, self.protect_ends = shape, protect_ends

    def block_params(self) -> int:
        return self.shape.block_params()

    def predict(self, plan: PruningPlan) -> int:
        return self.shape.after(plan).block_params()

    def scores(self, stage: StageConfig, seed: int, granularity: str | None = None):
        granularity = granularity or stage.granularity
        layers = self.shape.layers
        if granularity == "layers":
            out = {l.orig_index: 0.0 for l in layers}
            if _criterion_options(stage, self.protect_ends)["protect_ends"] and len(layers) > 2:
                out[layers[0].orig_index] = out[layers[-1].orig_index] = float("inf")
            return out
        n = (lambda l: len(l.heads)) if granularity == "heads" else (lambda l: len(l.channels))
        return {l.orig_index: torch.zeros(n(l), dtype=torch.float64) for l in layers}

    def apply(self, plan: PruningPlan) -> None:
        self.shape = self.shape.after(plan)


def _cut_stage(cut, stage: StageConfig, target: int, cfg: CompressConfig, seed: int, last: bool) -> None:
    """Remove units until the model has about ``target`` block params, in ``stage.steps`` steps."""
    for step in range(stage.steps):
        now = cut.block_params()
        step_target = round(now - (now - target) / (stage.steps - step))
        if now - step_target <= 0:
            continue  # nothing left to remove in this step: no scoring pass
        sc = cut.scores(stage, seed + step)
        cut.apply(select(stage.granularity, cut.shape, sc, now - step_target, mode=stage.mode,
                         max_fraction=cfg.max_channel_fraction, allocation=stage.allocation))
    gap = cut.block_params() - target
    if last and gap > 0:  # coarse units stop short of their share: close the gap with channels
        trim = _trim_stage(stage)
        sc = cut.scores(trim, seed + 99)
        cut.apply(select("channels", cut.shape, sc, gap, max_fraction=cfg.max_channel_fraction))


def _trim_stage(stage: StageConfig) -> StageConfig:
    """The stage's own criterion where it scores channels too, else the default one."""
    return StageConfig(granularity="channels", criterion=stage.criterion if stage.criterion in names("channels")
                       else "wanda_sp").check("trim")


def _joint_cut(cut, cfg: CompressConfig, seed: int, target: int) -> None:
    """Score every granularity once on the model as it is, then remove all of them together down
    to ``target`` block params, each granularity taking its share of the cut."""
    s = cut.shape
    start = cut.block_params()
    scored = {st.granularity: cut.scores(st, seed) for st in cfg.stages}
    plan, cum = PruningPlan(), 0.0
    for k, st in enumerate(cfg.stages):
        cum += st.share
        goal = target if k == len(cfg.stages) - 1 else round(start - (start - target) * cum)
        need = cut.predict(plan) - goal
        plan = plan | select(st.granularity, s, _restrict(scored[st.granularity], s, plan), need, mode=st.mode,
                             max_fraction=cfg.max_channel_fraction, allocation=st.allocation)
    gap = cut.predict(plan) - target
    if gap > 0:  # coarse last stage: close the gap with channels, scored on the same model
        trim = StageConfig(granularity="channels", criterion="wanda_sp").check("trim")
        sc = cut.scores(trim, seed + 99)
        plan = plan | select("channels", s, _restrict(sc, s, plan), gap, max_fraction=cfg.max_channel_fraction)
    cut.apply(plan)


def _restrict(scores: dict, s, plan: PruningPlan) -> dict:
    """Units of layers the plan already removes score +inf (choosing them would waste budget)."""
    if all(isinstance(v, float) for v in scores.values()):
        return {k: (float("inf") if k in plan.layers else v) for k, v in scores.items()}
    return {l.orig_index: scores[l.orig_index] if l.orig_index not in plan.layers
            else torch.full_like(scores[l.orig_index], float("inf")) for l in s.layers}


# -- the plan of a run: what the dry run prints and the run follows ---------------------------

def _stages(cfg: CompressConfig) -> list[int | None]:
    """A method's cut + recovery steps: one per recipe stage, or one (``None``) for the whole run."""
    return [None] if get_method(cfg.method).schedule == "once" else list(range(len(cfg.stages)))


def _run_cut(model_or_cut, batches, cfg: CompressConfig, i: int | None, target: int, goals: list[int], seed: int,
             loss_fn) -> None:
    """The registered method's cut for step ``i`` (methods/registry.py), on a model or on the planner's shape."""
    get_method(cfg.method).cut_fn()(model_or_cut, batches, cfg, i, target if i is None else goals[i], seed, loss_fn)


def _skip_reason(stage: StageConfig | None, before: Shape, goal: int) -> str:
    """Why a stage removes nothing (its share is smaller than one of its units, or none is left)."""
    now = before.block_params()
    if goal >= now:
        return f"the earlier stages already reached this stage's goal of {goal:,} block params"
    gran = stage.granularity if stage is not None else "units"
    c = before.costs
    unit = {"layers": min((before.layer_params(l) for l in before.layers), default=0),
            "heads": c.q_head + (c.kv_head if before.dims.group_size == 1 else 0),
            "channels": c.channel}.get(gran)
    if unit and now - goal < unit:
        return (f"its share ({now - goal:,} block params) is smaller than one of its units ({gran[:-1]}: {unit:,} "
                f"params); the next stage takes the share")
    return f"no {gran} can go: the limits on what must stay (protected ends, one head, one channel) are reached"


def plan_run(model: nn.Module, cfg: CompressConfig, check: bool = True) -> dict:
    """The run's plan, from the model's shape and the configuration alone (no data, no scores):
    every stage's goal, predicted cut and recovery, which stages are skipped and why, and the most
    this plan can reach. ``check`` raises :class:`InfeasibleTargetError` (before any cost) when a target
    is out of reach. The dry run prints this; :func:`compress` runs it and follows it.

    Example::

        p = plan_run(model, CompressConfig(ratio=1.5).check())
        [(r["granularity"], r["block_params_after"], r["skipped"]) for r in p["stages"]]
    """
    from cascadeprune.methods.feasibility import check_targets

    spec = get_method(cfg.method)
    shape = Shape.of(model)
    dense, now = dense_block_params(model), shape.block_params()
    target = round(dense / cfg.ratio) if cfg.ratio > 1 and math.isfinite(cfg.ratio) else 0
    plan = {"method": cfg.method, "ratio_target": cfg.ratio, "dense_block_params": dense,
            "block_params_before": now, "target_block_params": target, "stages": []}
    floor = _predict(shape, cfg, 0)[-1][0]  # every stage asked for everything: the plan's limit
    plan["max_ratio"] = dense / floor if floor > 0 else math.inf
    plan["min_block_params"] = floor
    if 0 < target < now:
        goals = _stage_goals(now, target, cfg)
        prev = shape
        for i, (after, sh) in zip(_stages(cfg), _predict(shape, cfg, target)):
            stage = None if i is None else cfg.stages[i]
            rec = recovery_for(spec, cfg, i)
            removed = prev.block_params() - after
            goal = target if i is None else goals[i]
            spends = removed > 0 and rec.method != "none"
            plan["stages"].append({
                "stage": 0 if i is None else i,
                "granularity": spec.stage_label("" if i is None else stage.granularity, 0 if i is None else i,
                                                len(cfg.stages)),
                "criterion": None if spec.schedule == "once" or cfg.method == "simultaneous" else stage.criterion,
                "mode": stage.mode if stage is not None else None, "steps": stage.steps if stage is not None else 1,
                "share": round(stage.share, 4) if stage is not None else 1.0,
                "goal_block_params": goal, "remove_params": removed, "block_params_after": after,
                "ratio_after": round(dense / after, 3) if after else math.inf,
                "skipped": None if removed > 0 else _skip_reason(stage if cfg.method == "cascade" else None, prev,
                                                                 goal),
                "recovery": {"method": rec.method if spends else "none",
                             "steps": (rec.steps if spends else 0) if (rec.steps is not None or not spends) else None,
                             "epochs": rec.epochs if spends and rec.steps is None else None},
                "exact": _exact(stage, shape, cfg),
            })
            prev = sh
        plan["block_params_after"] = prev.block_params()
        plan["ratio_after"] = dense / prev.block_params()
    if check:
        check_targets(plan, cfg)
    return plan


def _exact(stage: StageConfig | None, shape: Shape, cfg: CompressConfig) -> bool:
    """Whether the predicted cut is exact: everything but a GQA heads cut (whole KV groups or one head per
    group, chosen by score) and FLAP's score-ranked mix of heads and channels."""
    if cfg.method == "flap":
        return False
    if cfg.method == "shortgpt" or shape.dims.group_size == 1:
        return True
    touched = cfg.stages if stage is None or cfg.method != "cascade" else [stage]
    return not any(st.granularity == "heads" for st in touched)


def _predict(shape: Shape, cfg: CompressConfig, target: int) -> list[tuple[int, Shape]]:
    """(block params, shape) after each step of the method's schedule, cutting ``shape`` towards ``target``."""
    cut = _ShapeCut(shape, cfg.protect_ends)
    goals = _stage_goals(shape.block_params(), target, cfg)
    out = []
    for i in _stages(cfg):
        _run_cut(cut, None, cfg, i, target, goals, 0, None)
        out.append((cut.block_params(), cut.shape))
    return out


def dry_run(model: nn.Module, cfg: CompressConfig) -> list[dict]:
    """The stages of :func:`plan_run` (raises when a target is out of reach)."""
    return plan_run(model, cfg)["stages"]


# -- scoring ----------------------------------------------------------------------------------

def stage_scores(model, batches, stage: StageConfig, seed: int, protect_ends: bool, loss_fn,
                 granularity: str | None = None):
    """Collect calibration statistics on ``model`` as it is now and score ``stage``'s units; (stats, scores).

    ``loss_fn(model, batch)`` is the task's loss (``Task.loss``)."""
    granularity = granularity or stage.granularity
    needs = spec(granularity, stage.criterion)  # what the criterion declares it needs (importance/registry.py)
    stats = collect(model, batches, loss_fn=loss_fn, gradients=needs.gradients)
    if needs.ablation:
        collect_ablation(model, batches, loss_fn, stats)
    return stats, score(granularity, stage.criterion, stats, seed=seed, **_criterion_options(stage, protect_ends))


def _criterion_options(stage: StageConfig, protect_ends: bool) -> dict:
    """The run's ``protect_ends`` unless the stage's own criterion options set it."""
    return {"protect_ends": protect_ends, **stage.criterion_options()}


def cut_stage(model, batches, stage: StageConfig, target: int, cfg: CompressConfig, seed: int, last: bool,
              loss_fn) -> None:
    """Remove units until the model has about ``target`` block params, in ``stage.steps`` steps.

    Each step re-scores the model as it is (``stage_scores`` with ``seed + step``) and removes the
    lowest-scored units; ``last`` closes a remaining gap with channels (the cascade's final stage).
    The engine's one cut, also used by the criteria benchmark: ``cut_stage(clf, batches,
    StageConfig("heads", criterion="taylor"), block_params(clf) - n, cfg, seed, False, task.loss)``."""
    _cut_stage(_as_cut(model, batches, loss_fn, cfg), stage, target, cfg, seed, last)


# -- recovery budgets -------------------------------------------------------------------------

def summed_recovery(cfg: CompressConfig):
    """One recovery with the sum of every stage's budget (the last stage's settings otherwise)."""
    return cfg.stages[-1].recovery.model_copy(update={
        "epochs": sum(st.recovery.epochs or 0 for st in cfg.stages) or None,
        "steps": sum(st.recovery.steps or 0 for st in cfg.stages) or None})


def baseline_recovery(cfg: CompressConfig):
    """A baseline's recovery: the summed budget where its authors fine-tune (or ``baseline_recovery: budget``),
    none where they do not (or ``baseline_recovery: none``)."""
    from cascadeprune.methods.baselines import BASELINES

    use = {"budget": True, "none": False}.get(cfg.baseline_recovery, BASELINES[cfg.method].fine_tunes)
    rec = summed_recovery(cfg)
    return rec if use else rec.model_copy(update={"method": "none"})


def recovery_for(spec: MethodSpec, cfg: CompressConfig, stage: int | None):
    """The recovery a method's cut is followed by, by its registered rule (methods/registry.py)."""
    if spec.recovery == "stages":
        return cfg.stages[stage].recovery
    return summed_recovery(cfg) if spec.recovery == "summed" else baseline_recovery(cfg)


# -- the cuts the registry names (cut(model, batches, cfg, stage, target, seed, loss_fn)) -------------

def _as_cut(model, batches, loss_fn, cfg: CompressConfig):
    """The planner passes a _ShapeCut as ``model``; the run passes the model itself."""
    return model if isinstance(model, _ShapeCut) else _ModelCut(model, batches, loss_fn, cfg.protect_ends)


def cascade_cut(model, batches, cfg: CompressConfig, stage: int, target: int, seed: int, loss_fn) -> None:
    """One cascade stage: its granularity only, in ``steps`` re-scored steps; the last stage closes the gap."""
    _cut_stage(_as_cut(model, batches, loss_fn, cfg), cfg.stages[stage], target, cfg, seed,
               last=stage == len(cfg.stages) - 1)


def joint_cut(model, batches, cfg: CompressConfig, stage: int | None, target: int, seed: int, loss_fn) -> None:
    """Every granularity scored on the model as it is and cut together (oneshot; simultaneous per iteration)."""
    _joint_cut(_as_cut(model, batches, loss_fn, cfg), cfg, seed, target)


def baseline_cut(model, batches, cfg: CompressConfig, stage: int | None, target: int, seed: int, loss_fn) -> None:
    """A published baseline's own criterion and schedule (methods/baselines/); the planner predicts its cut
    with placeholder scores (``Baseline.plan_shape``)."""
    from cascadeprune.methods.baselines import BASELINES

    if isinstance(model, _ShapeCut):
        model.apply(BASELINES[cfg.method].plan_shape(model.shape, target, cfg.max_channel_fraction))
        return
    BASELINES[cfg.method].cut(model, batches, target, loss_fn, cfg.max_channel_fraction)


# -- checkpoints ------------------------------------------------------------------------------

def _write_json(path: Path, data) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


# -- the engine -------------------------------------------------------------------------------

def calibration_seed(cfg: CompressConfig) -> int:
    """The one seed rule: calibration draws with ``calibration.seed`` when a recipe sets it, else the run seed."""
    return cfg.seed if cfg.calibration.seed is None else cfg.calibration.seed


def _scores(task, model, split: str) -> dict:
    m = task.evaluate(model, split)
    return {"primary": m[task.metric], "all": m}


def compress(model: nn.Module, task, cfg: CompressConfig, out: str | Path, resume: bool = False,
             progress: bool = True) -> dict:
    """Compress ``model`` in place for ``task`` (a :class:`cascadeprune.task.Task`); checkpoints and
    state go under ``out/checkpoints``.

    Calibration batches come from ``task.calibration_batches`` (training data only, mixed by
    ``cfg.calibration.mix``); every stage records the task's primary metric (``task.metric``) right
    after pruning and after recovery on the test and the validation split, plus the full test metrics."""
    from cascadeprune.storage import load_model, save_model

    cfg.check()
    if cfg.method == "auto":  # the search decides the cut and the recovery (methods/auto.py)
        from cascadeprune.methods.auto import compress as auto_compress

        check_task_options(cfg, getattr(task, "recovery_options", None), task.name)
        return auto_compress(model, task, cfg, out, progress=progress)
    the_plan = plan_run(model, cfg)  # an unreachable target stops here: the task is not even asked anything
    check_task_options(cfg, getattr(task, "recovery_options", None), task.name)
    out = Path(out)
    ckpt = out / "checkpoints"
    ckpt.mkdir(parents=True, exist_ok=True)
    metric = task.metric
    dense_blocks = dense_block_params(model)
    targets = stage_targets(model, cfg)
    batches = task.calibration_batches(cfg.calibration.mix, cfg.calibration.n, cfg.calibration.batch_size,
                                       calibration_seed(cfg))
    teacher = copy.deepcopy(model).eval() if any(st.recovery.method == "distill" for st in cfg.stages) else None
    if resume and (ckpt / STATE_FILE).is_file():
        state = json.loads((ckpt / STATE_FILE).read_text())
        if state["config"] != cfg.to_dict():
            raise CascadePruneError(f"{ckpt / STATE_FILE}: the checkpoint was made with another configuration; "
                                    "use the same recipe and ratio, or start without --resume")
        if state["completed"] >= 0:
            model = load_model(ckpt / f"stage-{state['completed']:02d}")
    else:  # the dense model is evaluated once, not again on every resume
        test, val = _scores(task, model, "test"), _scores(task, model, "val")
        state = {"config": cfg.to_dict(), "task": task.name, "metric": metric, "completed": -1, "stages": [],
                 "dense": {"block_params": dense_blocks, metric: test["primary"], f"val_{metric}": val["primary"],
                           "test": test["all"]}}
    spec = get_method(cfg.method)
    single = spec.schedule == "once"  # one cut, one recovery; else one per recipe stage
    for i, planned in zip(_stages(cfg), the_plan["stages"]):
        idx = 0 if single else i
        if idx <= state["completed"]:
            continue
        reset_peak_rss()
        t0 = time.perf_counter()
        seed = cfg.seed * 1000 + idx * 10
        torch.manual_seed(seed)
        before = block_params(model)
        name = planned["granularity"]
        skipped = planned["skipped"]
        if skipped is None:  # a per-stage method's iteration i ends where stage i would
            _run_cut(model, batches, cfg, i, round(dense_blocks / cfg.ratio), targets, seed, task.loss)
            if block_params(model) == before:  # a score-dependent cut (GQA heads) found nothing to take
                skipped = "the cut removed nothing (no unit fitted this stage's share)"
        if single or idx == len(cfg.stages) - 1:
            _check_reached(model, dense_blocks, cfg, ckpt, state["completed"])
        if skipped is not None:  # nothing removed: no evaluation, no recovery; the report says why
            record = {"stage": idx, "granularity": name, "skipped": skipped, "block_params_before": before,
                      "block_params": block_params(model), "ratio": dense_blocks / block_params(model),
                      "planned_block_params": planned["block_params_after"],
                      **_unchanged_metrics(state, metric),
                      "prune_s": 0.0, "recovery_steps": 0, "recovery_s": 0.0,
                      "wall_s": round(time.perf_counter() - t0, 2),
                      "peak_rss_mb": round(peak_rss_mb()), "process_peak_rss_mb": round(process_peak_rss_mb())}
        else:
            rec_cfg = recovery_for(spec, cfg, i)
            pruned, pruned_val = _scores(task, model, "test"), _scores(task, model, "val")
            t_cut = time.perf_counter() - t0
            rec = recover(model, task, rec_cfg, seed=seed + 1, teacher=teacher, progress=progress,
                          desc=f"stage {idx} {name}: recover")
            recovered, recovered_val = _scores(task, model, "test"), _scores(task, model, "val")
            record = {"stage": idx, "granularity": name, "skipped": None, "block_params_before": before,
                      "block_params": block_params(model), "ratio": dense_blocks / block_params(model),
                      "planned_block_params": planned["block_params_after"],
                      f"{metric}_pruned": pruned["primary"], f"{metric}_recovered": recovered["primary"],
                      f"val_{metric}_pruned": pruned_val["primary"], f"val_{metric}_recovered": recovered_val["primary"],
                      "test_pruned": pruned["all"], "test_recovered": recovered["all"],
                      "prune_s": round(t_cut, 2), "recovery_steps": rec["steps"],
                      "recovery_s": round(rec["wall_s"], 2), "wall_s": round(time.perf_counter() - t0, 2),
                      # this stage's own peak, and the whole process's so far (what a run must be provisioned for)
                      "peak_rss_mb": round(peak_rss_mb()), "process_peak_rss_mb": round(process_peak_rss_mb())}
        save_model(model, ckpt / f"stage-{idx:02d}", overwrite=True)  # a skipped stage too: --resume finds it
        state["stages"].append(record)
        state["completed"] = idx
        state["plan"] = applied_plan(resolve(model)).to_dict()
        _write_json(ckpt / STATE_FILE, state)  # only after the checkpoint is complete
    achieved = dense_blocks / block_params(model)
    return {"model": model, "state": state, "ratio_target": cfg.ratio, "ratio_achieved": achieved}


def _unchanged_metrics(state: dict, metric: str) -> dict:
    """A skipped stage leaves the model as it was: its figures are the previous stage's (or the dense model's),
    carried without evaluating again; ``metrics_from`` says whose."""
    if state["stages"]:
        prev = state["stages"][-1]
        m, v, test = prev[f"{metric}_recovered"], prev.get(f"val_{metric}_recovered"), prev.get("test_recovered")
        origin = f"stage {prev['stage']}"
    else:
        d = state["dense"]
        m, v, test, origin = d[metric], d.get(f"val_{metric}"), d.get("test"), "dense"
    return {f"{metric}_pruned": m, f"{metric}_recovered": m, f"val_{metric}_pruned": v, f"val_{metric}_recovered": v,
            "test_pruned": test, "test_recovered": test, "metrics_from": origin}


def run_compression(model: nn.Module, task, cfg: CompressConfig, out: str | Path, name: str,
                    resume: bool = False, progress: bool = True, save_extra=None) -> dict:
    """compress() plus the deliverables: ``out/model/``, ``out/plan.json`` and the report files.

    ``save_extra(directory)`` writes what the task needs beside the weights (e.g. a tokenizer)."""
    from cascadeprune.accounting import param_breakdown
    from cascadeprune.report import write_report
    from cascadeprune.storage import save_model

    out = Path(out)
    before = param_breakdown(model)
    res = compress(model, task, cfg, out, resume=resume, progress=progress)
    small = res["model"]
    save_model(small, out / "model", overwrite=True)
    if save_extra is not None:
        save_extra(out / "model")
    (out / "plan.json").write_text(applied_plan(resolve(small)).to_json() + "\n")
    test = task.evaluate(small, "test")
    report = {"model": name, "task": task.name, "metric": task.metric, "method": cfg.method, "seed": cfg.seed,
              "ratio_target": res["ratio_target"], "ratio_achieved": res["ratio_achieved"], "block_params": block_params(small),
              task.metric: test[task.metric], "dense": res["state"]["dense"], "stages": res["state"]["stages"],
              "params_before": before, "params_after": param_breakdown(small), "config": cfg.to_dict(),
              "calibration_seed": calibration_seed(cfg), "process_peak_rss_mb": round(process_peak_rss_mb()),
              "test": test}
    for key in getattr(task, "extra_metrics", ()):  # the task's further headline metrics (e.g. macro-F1)
        report[key] = test[key]
    if "auto" in res:
        report["auto"] = res["auto"]
    return {"model": small, "report": report, "paths": write_report(report, out)}


def _check_reached(model: nn.Module, dense_blocks: int, cfg: CompressConfig, ckpt: Path, completed: int) -> None:
    """Stop before recovery (and before overwriting anything) when the final cut missed the ratio."""
    achieved = dense_blocks / block_params(model)
    if abs(achieved / cfg.ratio - 1) > RATIO_TOLERANCE:
        last = f"the last good checkpoint is {ckpt / f'stage-{completed:02d}'}" if completed >= 0 else \
            "no stage had completed"
        # one-shot cuts once, so more channel steps cannot help it; the cascade's channel stage can
        steps = "" if get_method(cfg.method).schedule == "once" else ", or use more channel steps"
        raise CascadePruneError(
            f"ratio {cfg.ratio:g} is not reachable by method {cfg.method!r} on this model: the cut stopped at "
            f"{achieved:.2f}x (every layer keeps at least one head, at most max_channel_fraction="
            f"{cfg.max_channel_fraction:g} of its channels go per removal step, and at least one layer stays). "
            f"Ask for a lower ratio, give layers a larger share{steps}; {last}")
