"""Tasks that compressed models are measured on, behind the :class:`cascadeprune.task.Task` interface.

``get_task(spec, model, source)`` builds one from a command-line spec:

- ``lm``, ``lm:prose,code``, ``lm:code@seq=64`` — a causal LM on the shipped multi-domain corpus
  (:mod:`cascadeprune.tasks.lm`);
- any other name is a bearing protocol (``cwru-4class-crossload``, ``synthetic``, ...) for a vibration
  classifier (:mod:`cascadeprune.tasks.bearing`).

Importing this package registers nothing: :mod:`cascadeprune.wiring` registers the factories below and
the tasks' directory formats (``tasks.bearing.format``) in one place.

Example::

    task = get_task("lm:prose,code", model, source="smollm2-135m")
"""

from __future__ import annotations

from cascadeprune.task import TASKS, get_task, register_task, task_kind

__all__ = ["TASKS", "get_task", "lm_task", "bearing_task", "register_task", "task_kind", "check_calibration",
           "check_config"]


def check_calibration(spec: str, mix: dict[str, float] | None) -> None:
    """The task's own check of a calibration mix, before any model is loaded: a causal LM's domains must be
    the task's (a bearing protocol takes any mix of its own conditions)."""
    if task_kind(spec) == "lm":
        from cascadeprune.tasks.lm.task import check_mix

        check_mix(spec, mix)


def lm_task(spec, model, source=None, data_dir=None):
    from cascadeprune.tasks.lm.task import LMTask

    return LMTask.from_spec(spec, model, source=source)


def bearing_task(spec, model, source=None, data_dir=None):
    from cascadeprune.tasks.bearing.task import BearingTask

    return BearingTask.for_model(spec.removeprefix("bearing:"), model, data_dir)


def check_config(spec: str, cfg, recipe: str | None = None) -> None:
    """The task's own checks of a compress configuration, before any model is loaded: every stage's recovery
    options against the task's options model (a RecipeError naming the recipe and the key), and the calibration
    mix (:func:`check_calibration`)."""
    from cascadeprune.methods.config import RecipeError, check_task_options
    from cascadeprune.task import task_options

    try:
        check_task_options(cfg, task_options(spec), spec)
    except RecipeError as e:
        raise RecipeError(f"{recipe}: {e}" if recipe else str(e)) from None
    check_calibration(spec, cfg.calibration.mix)
