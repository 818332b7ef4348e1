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
import os
import time
from pathlib import Path

import torch
from torch import nn

from cascadeprune.accounting import block_params, dense_block_params, predict_block_params
from cascadeprune.arch.resolve import resolve
from cascadeprune.calib import collect, collect_ablation
from cascadeprune.memory import peak_rss_mb, process_peak_rss_mb, reset_peak_rss
from cascadeprune.errors import CascadePruneError
from cascadeprune.importance import names, score, spec
from cascadeprune.methods.config import CompressConfig, StageConfig, check_task_options
from cascadeprune.methods.registry import MethodSpec
from cascadeprune.methods.registry import get as get_method
from cascadeprune.methods.select import select
from cascadeprune.plan import PruningPlan, applied_plan
from cascadeprune.recovery import recover
from cascadeprune.surgery import apply_plan

STATE_FILE = "state.json"


# -- budget -----------------------------------------------------------------------------------

def stage_targets(model: nn.Module, cfg: CompressConfig) -> list[int]:
    """Block-parameter count to reach after each stage (the last one is the ratio's target)."""
    dense, now = dense_block_params(model), block_params(model)
    target = round(dense / cfg.ratio)
    if target >= now:
        raise CascadePruneError(f"the model already has {now:,} block params; ratio {cfg.ratio} asks for {target:,}")
    cum, out = 0.0, []
    for st in cfg.stages:
        cum += st.share
        out.append(round(now - (now - target) * cum))
    out[-1] = target
    return out


def dry_run(model: nn.Module, cfg: CompressConfig) -> list[dict]:
    dense = dense_block_params(model)
    rows, prev = [], block_params(model)
    for i, (st, t) in enumerate(zip(cfg.stages, stage_targets(model, cfg))):
        rows.append({"stage": i, "granularity": st.granularity, "criterion": st.criterion, "mode": st.mode,
                     "steps": st.steps, "share": round(st.share, 4), "remove_params": prev - t,
                     "block_params_after": t, "ratio_after": round(dense / t, 3),
                     "recovery": {"method": st.recovery.method, "epochs": st.recovery.epochs,
                                  "steps": st.recovery.steps}})
        prev = t
    return rows


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
    return stats, score(granularity, stage.criterion, stats, seed=seed, protect_ends=protect_ends,
                        **stage.criterion_options())


def cut_stage(model, batches, stage: StageConfig, target: int, cfg: CompressConfig, seed: int, last: bool,
              loss_fn) -> None:
    """Remove units until the model has about ``target`` block params, in ``stage.steps`` steps.

    Each step re-scores the model as it is (``stage_scores`` with ``seed + step``) and removes the
    lowest-scored units; ``last`` closes a remaining gap with channels (the cascade's final stage).
    The engine's one cut, also used by the criteria benchmark: ``cut_stage(clf, batches,
    StageConfig("heads", criterion="taylor"), block_params(clf) - n, cfg, seed, False, task.loss)``."""
    for step in range(stage.steps):
        now = block_params(model)
        step_target = round(now - (now - target) / (stage.steps - step))
        _, sc = stage_scores(model, batches, stage, seed + step, cfg.protect_ends, loss_fn)
        plan = select(stage.granularity, resolve(model), sc, now - step_target, mode=stage.mode,
                      max_fraction=cfg.max_channel_fraction, allocation=stage.allocation)
        apply_plan(model, plan, inplace=True)
    gap = block_params(model) - target
    if last and gap > 0:  # coarse units stop short of their share: close the gap with channels
        # the stage's own criterion where it scores channels too, else the default one
        trim = StageConfig(granularity="channels", criterion=stage.criterion if stage.criterion in names("channels")
                           else "wanda_sp").check("trim")
        _, sc = stage_scores(model, batches, trim, seed + 99, cfg.protect_ends, loss_fn)
        apply_plan(model, select("channels", resolve(model), sc, gap, max_fraction=cfg.max_channel_fraction),
                   inplace=True)


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

def cascade_cut(model, batches, cfg: CompressConfig, stage: int, target: int, seed: int, loss_fn) -> None:
    """One cascade stage: its granularity only, in ``steps`` re-scored steps; the last stage closes the gap."""
    cut_stage(model, batches, cfg.stages[stage], target, cfg, seed, last=stage == len(cfg.stages) - 1,
               loss_fn=loss_fn)


def joint_cut(model, batches, cfg: CompressConfig, stage: int | None, target: int, seed: int, loss_fn) -> None:
    """Every granularity scored on the model as it is and cut together (oneshot; simultaneous per iteration)."""
    _joint_cut(model, batches, cfg, seed, target, loss_fn)


def baseline_cut(model, batches, cfg: CompressConfig, stage: int | None, target: int, seed: int, loss_fn) -> None:
    """A published baseline's own criterion and schedule (methods/baselines/)."""
    from cascadeprune.methods.baselines import BASELINES

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
    check_task_options(cfg, getattr(task, "recovery_options", None), task.name)
    if cfg.method == "auto":  # the search decides the cut and the recovery (methods/auto.py)
        from cascadeprune.methods.auto import compress as auto_compress

        return auto_compress(model, task, cfg, out, progress=progress)
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
    for i in [None] if single else range(len(cfg.stages)):
        idx = 0 if single else i
        if idx <= state["completed"]:
            continue
        reset_peak_rss()
        t0 = time.perf_counter()
        seed = cfg.seed * 1000 + idx * 10
        torch.manual_seed(seed)
        before = block_params(model)
        # a per-stage method's iteration i ends where stage i would
        spec.cut_fn()(model, batches, cfg, i, round(dense_blocks / cfg.ratio) if single else targets[i], seed,
                      task.loss)
        rec_cfg = recovery_for(spec, cfg, i)
        name = spec.stage_label("" if single else cfg.stages[i].granularity, idx, len(cfg.stages))
        if single or idx == len(cfg.stages) - 1:
            _check_reached(model, dense_blocks, cfg, ckpt, state["completed"])
        pruned, pruned_val = _scores(task, model, "test"), _scores(task, model, "val")
        t_cut = time.perf_counter() - t0
        rec = recover(model, task, rec_cfg, seed=seed + 1, teacher=teacher, progress=progress,
                      desc=f"stage {idx} {name}: recover")
        recovered, recovered_val = _scores(task, model, "test"), _scores(task, model, "val")
        record = {"stage": idx, "granularity": name, "block_params_before": before,
                  "block_params": block_params(model), "ratio": dense_blocks / block_params(model),
                  f"{metric}_pruned": pruned["primary"], f"{metric}_recovered": recovered["primary"],
                  f"val_{metric}_pruned": pruned_val["primary"], f"val_{metric}_recovered": recovered_val["primary"],
                  "test_pruned": pruned["all"], "test_recovered": recovered["all"],
                  "prune_s": round(t_cut, 2), "recovery_steps": rec["steps"], "recovery_s": round(rec["wall_s"], 2),
                  "wall_s": round(time.perf_counter() - t0, 2),
                  # this stage's own peak, and the whole process's so far (what a run must be provisioned for)
                  "peak_rss_mb": round(peak_rss_mb()), "process_peak_rss_mb": round(process_peak_rss_mb())}
        save_model(model, ckpt / f"stage-{idx:02d}", overwrite=True)
        state["stages"].append(record)
        state["completed"] = idx
        state["plan"] = applied_plan(resolve(model)).to_dict()
        _write_json(ckpt / STATE_FILE, state)  # only after the checkpoint is complete
    achieved = dense_blocks / block_params(model)
    return {"model": model, "state": state, "ratio_target": cfg.ratio, "ratio_achieved": achieved}


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


RATIO_TOLERANCE = 0.01  # the achieved ratio is within 1 % of the target, or the run stops


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


def _joint_cut(clf, batches, cfg: CompressConfig, seed: int, target: int, loss_fn) -> None:
    """Score every granularity once on the model as it is, then remove all of them together down
    to ``target`` block params, each granularity taking its share of the cut."""
    s = resolve(clf)
    start = block_params(clf)
    scored = {st.granularity: stage_scores(clf, batches, st, seed, cfg.protect_ends, loss_fn)[1]
              for st in cfg.stages}
    plan, cum = PruningPlan(), 0.0
    for k, st in enumerate(cfg.stages):
        cum += st.share
        goal = target if k == len(cfg.stages) - 1 else round(start - (start - target) * cum)
        need = predict_block_params(clf, plan) - goal
        plan = plan | select(st.granularity, s, _restrict(scored[st.granularity], s, plan), need, mode=st.mode,
                             max_fraction=cfg.max_channel_fraction, allocation=st.allocation)
    gap = predict_block_params(clf, plan) - target
    if gap > 0:  # coarse last stage: close the gap with channels, scored on the same model
        trim = StageConfig(granularity="channels", criterion="wanda_sp").check("trim")
        sc = stage_scores(clf, batches, trim, seed + 99, cfg.protect_ends, loss_fn)[1]
        plan = plan | select("channels", s, _restrict(sc, s, plan), gap, max_fraction=cfg.max_channel_fraction)
    apply_plan(clf, plan, inplace=True)


def _restrict(scores: dict, s, plan: PruningPlan) -> dict:
    """Units of layers the plan already removes score +inf (choosing them would waste budget)."""
    if all(isinstance(v, float) for v in scores.values()):
        return {k: (float("inf") if k in plan.layers else v) for k, v in scores.items()}
    return {l.orig_index: scores[l.orig_index] if l.orig_index not in plan.layers
            else torch.full_like(scores[l.orig_index], float("inf")) for l in s.layers}
