"""From-scratch backbones: a controlled MHA+GELU vs GQA+SwiGLU pair at matched size.

``gpt2-10m`` and ``llama-10m`` both have 6 layers, hidden size 384, 6 query heads of 64 and about
10.6 / 10.3 M transformer-block parameters; they differ only in attention (MHA vs GQA with 2 KV
heads, D = 3) and FFN (GELU 1536 vs SwiGLU 1152). ``gpt2-deep`` is the same GPT-2 style at the
depth of the paper's GPT-2 (12 layers), narrower (hidden 256, 8 heads of 32, FFN 1024, 9.48 M block
parameters), so whole-layer removal is finer-grained. Names accept a size suffix from the table.

Example::

    backbone = scratch_backbone("gpt2-10m", max_positions=64)
"""

from __future__ import annotations

import torch
import transformers

SCRATCH = {
    "gpt2-10m": ("GPT2Config", dict(n_embd=384, n_layer=6, n_head=6, n_inner=1536, activation_function="gelu_new",
                                     resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.0)),
    "llama-10m": ("LlamaConfig", dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=6,
                                       num_key_value_heads=2, head_dim=64, intermediate_size=1152,
                                       hidden_act="silu", attention_dropout=0.0)),
    "gpt2-deep": ("GPT2Config", dict(n_embd=256, n_layer=12, n_head=8, n_inner=1024, activation_function="gelu_new",
                                      resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.0)),
    # small versions for the demo (6 layers, ~1.2 M block params) and tiny ones for tests
    "gpt2-mini": ("GPT2Config", dict(n_embd=128, n_layer=6, n_head=4, n_inner=512, resid_pdrop=0.0, embd_pdrop=0.0,
                                      attn_pdrop=0.0)),
    "llama-mini": ("LlamaConfig", dict(hidden_size=128, num_hidden_layers=6, num_attention_heads=4,
                                        num_key_value_heads=2, head_dim=32, intermediate_size=384)),
    "gpt2-tiny": ("GPT2Config", dict(n_embd=64, n_layer=4, n_head=4, n_inner=256, resid_pdrop=0.0, embd_pdrop=0.0,
                                      attn_pdrop=0.0)),
    "llama-tiny": ("LlamaConfig", dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                                        num_key_value_heads=2, head_dim=16, intermediate_size=192)),
}


def scratch_backbone(name: str, max_positions: int = 128, seed: int = 0) -> torch.nn.Module:
    """A randomly initialised base model (no LM head) with a one-row token embedding."""
    cls_name, kwargs = SCRATCH[name]
    cfg_cls = getattr(transformers, cls_name)
    extra = {"n_positions": max_positions} if cls_name == "GPT2Config" else {"max_position_embeddings": max_positions}
    config = cfg_cls(vocab_size=1, bos_token_id=0, eos_token_id=0, pad_token_id=None, **extra, **kwargs)
    torch.manual_seed(seed)
    return transformers.AutoModel.from_config(config, dtype=torch.float32)
