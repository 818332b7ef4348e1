"""The one declarative table of model families.

Everything cascadeprune knows about where things live inside a Hugging Face model is written
here, keyed by ``config.model_type``. Algorithms and surgery read a resolved
:class:`~cascadeprune.arch.resolve.Structure`; they never probe module names themselves.

To support a new family with the same module shapes as an existing one, add one entry to
``FAMILIES`` (or call :func:`register`). Example::

    from cascadeprune.arch.table import FAMILIES, register
    register("my_llama_clone", dataclasses.replace(FAMILIES["llama"], name="my_llama_clone"))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# How the query/key/value projections are stored.
#   split        : separate q, k, v modules (Llama, Mistral, Qwen2, BERT, RoBERTa)
#   fused_blocks : one module whose output is [q | k | v], each hidden-size wide (GPT-2's c_attn)
#   fused_heads  : one module whose output is per head [q_h | k_h | v_h] (GPT-NeoX's query_key_value)
QKVLayout = Literal["split", "fused_blocks", "fused_heads"]

# What a module attribute must be set to after head surgery.
#   heads  : number of query heads kept     kv_heads : number of KV heads kept
#   groups : query heads per KV head        inner    : query heads x head_dim
AttrQuantity = Literal["heads", "kv_heads", "groups", "inner"]


@dataclass(frozen=True)
class FamilySpec:
    """Where one family keeps its parts, relative to ``model.base_model`` and to one layer."""

    name: str
    layers: str  # ModuleList of transformer blocks, relative to the base model
    embeddings: tuple[str, ...]  # modules counted as embeddings, relative to the base model
    attention: str  # attention module inside a layer (its attributes are updated by surgery)
    qkv_layout: QKVLayout
    q: str | None  # split layout: q/k/v paths inside the layer; fused: the fused module in `qkv`
    k: str | None
    v: str | None
    o: str  # attention output projection (its input is sliced per head)
    up: str
    down: str
    gate: str | None  # gated FFN (SwiGLU/GeGLU) when not None
    norms: tuple[str, ...]
    attn_attrs: dict[str, AttrQuantity]  # attention-module attributes tied to head counts
    qkv: str | None = None  # fused q/k/v module path
    weight_layout: Literal["linear", "conv1d"] = "linear"  # conv1d stores weight as (in, out)
    causal: bool = True  # decoder (causal LM) or encoder
    # Config keys (canonical attribute names; HF attribute_map aliases resolve through them).
    key_layers: str = "num_hidden_layers"
    key_heads: str = "num_attention_heads"
    key_kv_heads: str | None = None  # None: MHA, kv heads = query heads
    key_head_dim: str | None = None  # None: head_dim is derived as hidden / heads by the modeling code
    key_intermediate: str = "intermediate_size"
    key_activation: str = "hidden_act"
    # Config option that makes a layer's math depend on its index: layer removal would change it.
    index_dependent_option: str | None = None
    default_intermediate_multiplier: int = 4  # when the intermediate key is None (GPT-2's n_inner)
    extra: dict = field(default_factory=dict)


_LLAMA = FamilySpec(
    name="llama",
    layers="layers",
    embeddings=("embed_tokens",),
    attention="self_attn",
    qkv_layout="split",
    q="self_attn.q_proj",
    k="self_attn.k_proj",
    v="self_attn.v_proj",
    o="self_attn.o_proj",
    up="mlp.up_proj",
    gate="mlp.gate_proj",
    down="mlp.down_proj",
    norms=("input_layernorm", "post_attention_layernorm"),
    attn_attrs={"num_key_value_groups": "groups"},
    key_kv_heads="num_key_value_heads",
    key_head_dim="head_dim",
)

_BERT = FamilySpec(
    name="bert",
    layers="encoder.layer",
    embeddings=("embeddings",),
    attention="attention.self",
    qkv_layout="split",
    q="attention.self.query",
    k="attention.self.key",
    v="attention.self.value",
    o="attention.output.dense",
    up="intermediate.dense",
    gate=None,
    down="output.dense",
    norms=("attention.output.LayerNorm", "output.LayerNorm"),
    attn_attrs={"num_attention_heads": "heads", "all_head_size": "inner"},
    causal=False,
)

FAMILIES: dict[str, FamilySpec] = {}


def register(model_type: str, spec: FamilySpec) -> None:
    """Add a family under ``config.model_type``; registering a name twice is an error."""
    if model_type in FAMILIES:
        raise ValueError(f"family {model_type!r} is already in cascadeprune.arch.table.FAMILIES")
    FAMILIES[model_type] = spec


register("llama", _LLAMA)
register("mistral", FamilySpec(**{**_LLAMA.__dict__, "name": "mistral"}))
register("qwen2", FamilySpec(**{**_LLAMA.__dict__, "name": "qwen2"}))
register("bert", _BERT)
register("roberta", FamilySpec(**{**_BERT.__dict__, "name": "roberta"}))
register(
    "gpt2",
    FamilySpec(
        name="gpt2",
        layers="h",
        embeddings=("wte", "wpe"),
        attention="attn",
        qkv_layout="fused_blocks",
        qkv="attn.c_attn",
        q=None,
        k=None,
        v=None,
        o="attn.c_proj",
        up="mlp.c_fc",
        gate=None,
        down="mlp.c_proj",
        norms=("ln_1", "ln_2"),
        attn_attrs={"num_heads": "heads", "split_size": "inner"},
        weight_layout="conv1d",
        key_intermediate="n_inner",
        key_activation="activation_function",
        index_dependent_option="scale_attn_by_inverse_layer_idx",
    ),
)
register(
    "gpt_neox",
    FamilySpec(
        name="gpt_neox",
        layers="layers",
        embeddings=("embed_in",),
        attention="attention",
        qkv_layout="fused_heads",
        qkv="attention.query_key_value",
        q=None,
        k=None,
        v=None,
        o="attention.dense",
        up="mlp.dense_h_to_4h",
        gate=None,
        down="mlp.dense_4h_to_h",
        norms=("input_layernorm", "post_attention_layernorm"),
        attn_attrs={},
    ),
)


def family_for(model_type: str) -> FamilySpec:
    """Return the table entry for ``model_type`` or raise an error naming the table to extend."""
    from cascadeprune.errors import UnsupportedArchitectureError

    try:
        return FAMILIES[model_type]
    except KeyError:
        raise UnsupportedArchitectureError(
            f"model family {model_type!r} is not supported: it has no entry in "
            f"cascadeprune.arch.table.FAMILIES (supported: {', '.join(sorted(FAMILIES))}). "
            "Add a FamilySpec for it with cascadeprune.arch.table.register()."
        ) from None
