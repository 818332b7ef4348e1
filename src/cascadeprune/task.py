"""The Task interface: everything the engine needs to know about what a model is for.

The engine (``methods/``, ``recovery/``, ``calib/``, ``importance/``, ``storage/``) knows a task only
through this Protocol; implementations live under ``cascadeprune.tasks`` (``bearing``: a vibration
classifier; ``lm``: a causal LM on multi-domain text) and are registered here by
:mod:`cascadeprune.wiring` (the core imports no task; ``tests/test_boundaries.py`` checks it).

A task provides four things:

- ``calibration_batches(mix, n, batch_size, seed)``: batches drawn from its TRAINING data, mixed
  across named domains by weight (``None``: the task's default mix);
- ``loss(model, batch)``: a scalar on one batch (Taylor and ablation criteria, gradients);
- ``evaluate(model, split)``: named metrics on ``"val"`` or ``"test"``; ``metric`` names the primary
  one and ``higher_is_better`` its direction;
- ``train(model, cfg, seed, teacher, progress, desc)``: recovery steps over its training data with a
  ``methods.config.RecoveryConfig`` (the engine has already added LoRA adapters, frozen the rest,
  when ``cfg.method`` is lora or distill); returns ``{"steps": int, "wall_s": float}``.

Optionally, ``recovery_options``: the pydantic model (``extra="forbid"``) of the task's own recovery
options, ``cfg.task`` in ``train`` (checked for every stage before a run starts), and
``extra_metrics``: names in ``evaluate``'s answer that a compression report carries beside ``metric``.

Example::

    from cascadeprune.tasks import get_task
    task = get_task("lm:prose,code", model)
    batches = task.calibration_batches({"prose": 0.5, "code": 0.5}, n=32, batch_size=8, seed=42)
    task.evaluate(model, "test")["perplexity"]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

from cascadeprune._lazy import load_ref

if TYPE_CHECKING:
    import torch
    from torch import nn


@runtime_checkable
class Task(Protocol):
    name: str  # what the records call it, e.g. "cwru-4class-crossload" or "lm:prose,code,technical"
    metric: str  # the primary metric in evaluate()'s answer ("accuracy", "perplexity")
    higher_is_better: bool

    def calibration_batches(self, mix: dict[str, float] | None, n: int, batch_size: int, seed: int) -> list[Any]: ...

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor: ...

    def evaluate(self, model: nn.Module, split: str) -> dict: ...

    def train(self, model: nn.Module, cfg: Any, seed: int, teacher: nn.Module | None = None, progress: bool = True,
              desc: str = "recover") -> dict: ...


# -- the registry of tasks: spec prefix -> factory(spec, model, source, data_dir) -> Task --------------

TASKS: dict[str, Callable | str] = {}  # a factory or its "module:function" (imported on use)
OPTIONS: dict[str, Any] = {}  # prefix -> the task's recovery options model (or its "module:name")
DEFAULT_TASK = "bearing"  # a bare name (a bearing protocol) belongs to this prefix


def register_task(prefix: str, factory: Callable | str, options: Any = None) -> None:
    """``factory(spec, model, source, data_dir) -> Task`` for specs ``prefix`` or ``prefix:...``; ``options``:
    the task's recovery options model (its ``recovery_options``), so a recipe is checked before a model loads."""
    if prefix in TASKS:
        raise ValueError(f"task {prefix!r} is already registered")
    TASKS[prefix] = factory
    if options is not None:
        OPTIONS[prefix] = options


def task_options(spec: str) -> Any:
    """The recovery options model of the task ``spec`` names (None: it takes none)."""
    ref = OPTIONS.get(task_kind(spec))
    return None if ref is None else load_ref(ref)


def task_kind(spec: str) -> str:
    """The registered prefix ``spec`` belongs to (a bare protocol name is a bearing task)."""
    prefix = spec.split(":", 1)[0].split("@", 1)[0]
    return prefix if prefix in TASKS else DEFAULT_TASK


def get_task(spec: str, model, source=None, data_dir=None) -> Task:
    """The task ``spec`` names, for ``model`` (``source``: where it was loaded from; ``data_dir``: its data)."""
    kind = task_kind(spec)
    if kind not in TASKS:
        raise ValueError(f"no task registered for {spec!r} (cascadeprune.wiring.wire() registers the shipped ones)")
    return load_ref(TASKS[kind])(spec, model, source=source, data_dir=data_dir)
