"""Recovery after pruning: LoRA via PEFT (merged back into the weights)."""

from cascadeprune.recovery.lora import LoRAConfig, add_lora, attention_module_names, merge_lora
from cascadeprune.recovery.recover import recover

__all__ = ["LoRAConfig", "add_lora", "attention_module_names", "merge_lora", "recover"]
