"""One recovery step after a pruning stage: LoRA (merged back), full fine-tuning, or logit
distillation from the dense model (LoRA adapters with a KL term) — the training steps themselves
are the task's (``Task.train``), so the same recovery serves a classifier and a causal LM, with the
same step-budget semantics so compared variants get equal budgets.

Example::

    report = recover(model, task, RecoveryConfig(method="lora", steps=200), seed=42)
"""

from __future__ import annotations

from torch import nn

from cascadeprune.recovery.lora import LoRAConfig, add_lora, merge_lora


def recover(model: nn.Module, task, cfg, seed: int, teacher: nn.Module | None = None, progress: bool = True,
            desc: str = "recover") -> dict:
    """Train ``model`` in place according to ``cfg`` (a methods.config.RecoveryConfig) on ``task``."""
    if cfg.method == "none" or (not cfg.steps and not cfg.epochs):
        return {"steps": 0, "wall_s": 0.0}
    adapters = cfg.method in ("lora", "distill")
    if adapters:
        add_lora(model, LoRAConfig(rank=cfg.rank, alpha=cfg.alpha, targets=cfg.targets))
    try:
        report = task.train(model, cfg, seed=seed, teacher=teacher if cfg.method == "distill" else None,
                            progress=progress, desc=desc)
    finally:
        if adapters:
            merge_lora(model)
        for p in model.parameters():
            p.requires_grad = True
    return {"steps": report["steps"], "wall_s": report["wall_s"]}
