"""Recovery after pruning: LoRA via PEFT (merged back into the weights)."""

from cascadeprune.recovery.lora import LoRAConfig, add_lora, attention_module_names, merge_lora

__all__ = ["LoRAConfig", "add_lora", "attention_module_names", "merge_lora"]
