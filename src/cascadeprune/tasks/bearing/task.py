"""The bearing-fault task: a vibration classifier on a protocol (CWRU cross-load, MFPT, synthetic),
as a :class:`cascadeprune.task.Task` the engine compresses.

Calibration windows come from the protocol's TRAINING data, mixed across domains by weight
(``cwru-4class-crossload@snr=0`` etc., see :mod:`.calibration`); the loss is cross-entropy; the
metrics are accuracy and macro-F1 (``accuracy`` is the primary one); recovery trains on the training
windows with class balancing, speed jitter and best-validation selection (:mod:`.train`).

Example::

    task = BearingTask("synthetic", classes=clf.classes)
    task.evaluate(clf, "test")["accuracy"]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from cascadeprune.errors import CascadePruneError
from cascadeprune.tasks.bearing.calibration import build_calibration
from cascadeprune.tasks.bearing.options import RecoveryOptions
from cascadeprune.tasks.bearing.protocols import WindowConfig, build_dataset, holdout_load_view
from cascadeprune.tasks.bearing import train as train_mod  # called through the module: tests may spy on it
from cascadeprune.tasks.bearing.train import TrainConfig, evaluate


def calibration_batches(x: np.ndarray, y: np.ndarray, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(torch.from_numpy(x[i : i + batch_size]), torch.from_numpy(y[i : i + batch_size]))
            for i in range(0, len(x), batch_size)]


def classification_loss(model: nn.Module, batch) -> torch.Tensor:
    """Cross-entropy on windows whose class the model has (label -1 windows only feed activations)."""
    x, y = batch
    logits = model(x)
    keep = y >= 0
    if not keep.any():
        return logits.sum() * 0.0
    return nn.functional.cross_entropy(logits[keep], y[keep])


class BearingTask:
    metric = "accuracy"
    higher_is_better = True
    extra_metrics = ("macro_f1",)  # copied into the compression report beside the primary metric
    recovery_options = RecoveryOptions  # `recovery.task` in a recipe

    def __init__(self, protocol: str, classes: tuple[str, ...] | None = None, data_dir: str | Path | None = None,
                 windows: WindowConfig | None = None, dataset=None):
        self.name, self.data_dir, self.windows = protocol, data_dir, windows or WindowConfig()
        self.ds = dataset if dataset is not None else build_dataset(protocol, data_dir, self.windows)
        if classes is not None and tuple(self.ds.classes) != tuple(classes):
            raise CascadePruneError(f"the model predicts classes {list(classes)} but {protocol} has "
                                    f"{list(self.ds.classes)}")
        self.classes = tuple(classes or self.ds.classes)

    @classmethod
    def for_model(cls, protocol: str, model: nn.Module, data_dir: str | Path | None = None) -> "BearingTask":
        """The task a classifier is compressed on: its own window length, half-window training stride."""
        if getattr(model, "reference", False):
            raise CascadePruneError(f"{model.meta.get('backbone', 'the model')} is a reference model with no transformer "
                                    "blocks: there is nothing to prune (export or bench it as it is)")
        if not hasattr(model, "frontend") or not hasattr(model, "classes"):
            raise CascadePruneError(f"task {protocol!r} needs a classifier directory (train one with "
                                    "`cascadeprune train`); for a causal LM use --task lm")
        w = model.window
        return cls(protocol, model.classes, data_dir, WindowConfig(window=w, stride=w // 2))

    def calibration_batches(self, mix: dict[str, float] | None, n: int, batch_size: int, seed: int) -> list:
        calib = build_calibration(mix or {self.name: 1.0}, n, self.classes, seed=seed, data_dir=self.data_dir,
                                  windows=self.windows)
        return calibration_batches(calib.x, calib.y, batch_size)

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        return classification_loss(model, batch)

    def evaluate(self, model: nn.Module, split: str) -> dict:
        return evaluate(model, self.ds, split)

    def train(self, model: nn.Module, cfg, seed: int, teacher: nn.Module | None = None, progress: bool = True,
              desc: str = "recover") -> dict:
        """Recovery steps on the training windows (``cfg``: a methods.config.RecoveryConfig whose ``task``
        holds this task's :class:`RecoveryOptions`)."""
        opts = RecoveryOptions.model_validate(cfg.task)
        ds, eval_every = self.ds, None
        if opts.holdout_load is not None:
            ds = holdout_load_view(ds, opts.holdout_load)
            eval_every = max(5, (cfg.steps or 60) // 6)  # several chances to keep the best cross-load state
        elif cfg.keep == "last":
            eval_every = 10**9  # validated once, at the end: the last state is kept
        if not opts.train_frontend:  # the adapters (or everything, full) and the head train; the front end stays
            for p in model.frontend.parameters():
                p.requires_grad = False
        train_cfg = TrainConfig(epochs=cfg.epochs or 0.0, max_steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr,
                                seed=seed, speed_jitter=opts.speed_jitter, warmup_steps=10, patience=10**9,
                                eval_every=eval_every, device=cfg.device)
        report = train_mod.train_classifier(model, ds, train_cfg, progress=progress, desc=desc, teacher=teacher,
                                  distill_alpha=cfg.distill_alpha, temperature=cfg.temperature)
        return {"steps": report["steps"], "wall_s": report["wall_s"]}
