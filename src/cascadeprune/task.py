"""The Task interface: everything the engine needs to know about what a model is for.

The engine (``methods/``, ``recovery/``, ``calib/``, ``importance/``, ``storage/``) knows a task only
through this Protocol; implementations live under ``cascadeprune.tasks`` (``bearing``: a vibration
classifier; ``lm``: a causal LM on multi-domain text), and nothing outside ``tasks/`` imports them.

A task provides four things:

- ``calibration_batches(mix, n, batch_size, seed)``: batches drawn from its TRAINING data, mixed
  across named domains by weight (``None``: the task's default mix);
- ``loss(model, batch)``: a scalar on one batch (Taylor and ablation criteria, gradients);
- ``evaluate(model, split)``: named metrics on ``"val"`` or ``"test"``; ``metric`` names the primary
  one and ``higher_is_better`` its direction;
- ``train(model, cfg, seed, teacher, progress, desc)``: recovery steps over its training data with a
  ``methods.config.RecoveryConfig`` (the engine has already added LoRA adapters, frozen the rest,
  when ``cfg.method`` is lora or distill); returns ``{"steps": int, "wall_s": float}``.

Example::

    from cascadeprune.tasks import get_task
    task = get_task("lm:prose,code", model)
    batches = task.calibration_batches({"prose": 0.5, "code": 0.5}, n=32, batch_size=8, seed=42)
    task.evaluate(model, "test")["perplexity"]
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

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
