"""LoRA adapters via PEFT, injected in place into any model the architecture table resolves, and
merged back into plain weights.

Targets come from the architecture table (the attention projections q/k/v/o, or fused qkv + o;
optionally the FFN too), never from guessing module names. The paper's recovery: rank 4, alpha 16,
attention only. Everything else is frozen, except the modules the model itself names through an
optional ``trainable_with_adapters(train_frontend) -> list[nn.Module]`` method (a classifier's head
and front end); a plain causal LM trains only its adapters.

Example::

    model = add_lora(model, LoRAConfig(rank=4, alpha=16))
    ...train...
    model = merge_lora(model)       # plain weights again: prunable, savable, loadable
"""

from __future__ import annotations

from dataclasses import dataclass

from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from cascadeprune.arch.resolve import resolve


@dataclass(frozen=True)
class LoRAConfig:
    rank: int = 4
    alpha: int = 16
    dropout: float = 0.0
    targets: str = "attention"  # "attention" (q/k/v/o) or "all" (attention + FFN)
    train_frontend: bool = True  # passed to the model's trainable_with_adapters, if it has one


def attention_module_names(model: nn.Module, include_ffn: bool = False) -> list[str]:
    """Full names (relative to ``model``) of the projections LoRA should wrap."""
    s = resolve(model)
    wanted = set()
    for l in s.layers:
        mods = [l.q, l.k, l.v, l.qkv, l.o] + ([l.up, l.gate, l.gate_up, l.down] if include_ffn else [])
        wanted |= {id(m) for m in mods if m is not None}
    return [name for name, m in model.named_modules() if id(m) in wanted]


def add_lora(model: nn.Module, cfg: LoRAConfig = LoRAConfig()) -> nn.Module:
    """Freeze ``model``, wrap its attention projections with LoRA adapters (in place); returns ``model``."""
    targets = attention_module_names(model, include_ffn=cfg.targets == "all")
    fan_in_fan_out = resolve(model).family.weight_layout == "conv1d"  # GPT-2's Conv1D stores (in, out)
    peft_cfg = LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=targets,
                          fan_in_fan_out=fan_in_fan_out, bias="none")
    inject_adapter_in_model(peft_cfg, model)  # freezes every non-adapter parameter
    extra = getattr(model, "trainable_with_adapters", None)
    for module in extra(cfg.train_frontend) if callable(extra) else ():
        for p in module.parameters():
            p.requires_grad = True
    return model


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold the adapters into the weights, put the plain layers back, unfreeze everything."""
    for name, module in list(model.named_modules()):
        if isinstance(module, BaseTunerLayer):
            module.merge()
            parent_name, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, attr, module.get_base_layer())
    if hasattr(model, "peft_config"):  # PEFT's bookkeeping; a second add_lora would otherwise warn
        del model.peft_config
    for p in model.parameters():
        p.requires_grad = True
    return model
