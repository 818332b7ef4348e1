"""LoRA adapters via PEFT on a classifier's backbone, and merging them back.

Targets come from the architecture table (the attention projections q/k/v/o, or fused qkv + o),
never from guessing module names. The paper's recovery: rank 4, alpha 16, attention only. The
classification head always trains; the front end too unless ``train_frontend=False``.

Example::

    clf = add_lora(clf, LoRAConfig(rank=4, alpha=16))
    ...train...
    clf = merge_lora(clf)       # plain weights again: prunable, savable, loadable
"""

from __future__ import annotations

from dataclasses import dataclass

from peft import LoraConfig, get_peft_model
from torch import nn

from cascadeprune.arch.resolve import resolve


@dataclass(frozen=True)
class LoRAConfig:
    rank: int = 4
    alpha: int = 16
    dropout: float = 0.0
    targets: str = "attention"  # "attention" (q/k/v/o) or "all" (attention + FFN)
    train_frontend: bool = True  # False: only the adapters and the head train


def attention_module_names(backbone_owner: nn.Module, include_ffn: bool = False) -> list[str]:
    """Full names (relative to the backbone) of the projections LoRA should wrap."""
    s = resolve(backbone_owner)
    wanted = set()
    for l in s.layers:
        mods = [l.q, l.k, l.v, l.qkv, l.o] + ([l.up, l.gate, l.down] if include_ffn else [])
        wanted |= {id(m) for m in mods if m is not None}
    backbone = backbone_owner.backbone
    return [name for name, m in backbone.named_modules() if id(m) in wanted]


def add_lora(clf: nn.Module, cfg: LoRAConfig = LoRAConfig()) -> nn.Module:
    """Freeze the backbone, wrap its attention projections with LoRA; the head (and front end) train."""
    targets = attention_module_names(clf, include_ffn=cfg.targets == "all")
    fan_in_fan_out = resolve(clf).family.weight_layout == "conv1d"  # GPT-2's Conv1D stores (in, out)
    peft_cfg = LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=targets,
                          fan_in_fan_out=fan_in_fan_out, bias="none")
    clf.backbone = get_peft_model(clf.backbone, peft_cfg)
    for p in clf.head.parameters():
        p.requires_grad = True
    for p in clf.frontend.parameters():
        p.requires_grad = cfg.train_frontend
    return clf


def merge_lora(clf: nn.Module) -> nn.Module:
    """Fold the adapters into the weights and drop PEFT's wrappers."""
    if hasattr(clf.backbone, "merge_and_unload"):
        clf.backbone = clf.backbone.merge_and_unload()
    for p in clf.parameters():
        p.requires_grad = True
    return clf
