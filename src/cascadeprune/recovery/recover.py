"""One recovery step after a pruning stage: LoRA (merged back), full fine-tuning, or logit
distillation from the dense model — all on the task's training data, with the same step budget
semantics so compared variants get equal budgets.

Example::

    report = recover(clf, ds, RecoveryConfig(method="lora", steps=200), seed=42)
"""

from __future__ import annotations

from torch import nn

from cascadeprune.recovery.lora import LoRAConfig, add_lora, merge_lora


def recover(clf: nn.Module, ds, cfg, seed: int, teacher: nn.Module | None = None, progress: bool = True,
            desc: str = "recover") -> dict:
    """Train ``clf`` in place according to ``cfg`` (a methods.config.RecoveryConfig)."""
    from cascadeprune.tasks.bearing.train import TrainConfig, train_classifier

    if cfg.method == "none" or (not cfg.steps and not cfg.epochs):
        return {"steps": 0, "wall_s": 0.0}
    eval_every = None
    if cfg.holdout_load is not None:
        from cascadeprune.tasks.bearing.protocols import holdout_load_view

        ds = holdout_load_view(ds, cfg.holdout_load)
        eval_every = max(5, (cfg.steps or 60) // 6)  # several chances to keep the best cross-load state
    elif cfg.keep == "last":
        eval_every = 10**9  # validated once, at the end: the last state is kept
    train_cfg = TrainConfig(epochs=cfg.epochs or 0.0, max_steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr,
                            seed=seed, speed_jitter=cfg.speed_jitter, warmup_steps=10, patience=10**9,
                            eval_every=eval_every, device=cfg.device)
    if cfg.method in ("lora", "distill"):
        add_lora(clf, LoRAConfig(rank=cfg.rank, alpha=cfg.alpha, targets=cfg.targets,
                                 train_frontend=cfg.train_frontend))
    elif not cfg.train_frontend:  # full fine-tuning of everything but the front end
        for p in clf.frontend.parameters():
            p.requires_grad = False
    report = train_classifier(clf, ds, train_cfg, progress=progress, desc=desc,
                              teacher=teacher if cfg.method == "distill" else None,
                              distill_alpha=cfg.distill_alpha, temperature=cfg.temperature)
    if cfg.method in ("lora", "distill"):
        merge_lora(clf)
    for p in clf.parameters():
        p.requires_grad = True
    return {"steps": report["steps"], "wall_s": report["wall_s"]}
