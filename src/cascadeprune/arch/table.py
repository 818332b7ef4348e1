"""The one declarative table of model families.

Everything cascadeprune knows about where things live inside a Hugging Face model is written
here, keyed by ``config.model_type``. Algorithms and surgery read a resolved
:class:`~cascadeprune.arch.resolve.Structure`; they never probe module names themselves.

Each entry describes a *layout* (how q/k/v, the FFN, the norms and the config keys are laid
out), not code: two families with the same layout differ only in their paths and keys. A
``model_type`` with no entry is matched against these layouts by
:mod:`cascadeprune.arch.recognise` (unambiguous match + an equivalence check on the spot).

To support a new family with the same module shapes as an existing one, add one entry to
``FAMILIES`` (or call :func:`register`). Example::

    from cascadeprune.arch.table import FAMILIES, register
    register("my_llama_clone", dataclasses.replace(FAMILIES["llama"], name="my_llama_clone"))
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

# How the query/key/value projections are stored.
#   split        : separate q, k, v modules (Llama, Mistral, Qwen2, BERT, RoBERTa)
#   fused_blocks : one module whose output is [q | k | v]: q is heads x head_dim wide, k and v are
#                  KV heads x head_dim wide (GPT-2's c_attn with MHA, Phi-3's qkv_proj with GQA)
#   fused_heads  : one module whose output is per head [q_h | k_h | v_h] (GPT-NeoX's query_key_value)
QKVLayout = Literal["split", "fused_blocks", "fused_heads"]

# Per-head normalisation of queries and keys (after the projection, before attention).
#   head_dim : one weight of head_dim entries shared by every head (Qwen3, Gemma 3, Phi's
#              qk_layernorm): kept whole when heads go
#   per_head : a weight shaped (heads, head_dim) (Cohere's use_qk_norm): sliced with the heads
#   full     : one norm over all heads' width, heads x head_dim (OLMo-2): its statistics mix the
#              heads, so removing one changes the others' normalisation and pruning would not
#              equal masking. Such a family sets `heads_refused`: layers and channels only.
QKNormKind = Literal["head_dim", "per_head", "full"]

# What a module attribute must be set to after head surgery.
#   heads  : number of query heads kept     kv_heads : number of KV heads kept
#   groups : query heads per KV head        inner    : query heads x head_dim
# An attribute written "config.<key>" is a key the attention module reads from its config at
# run time (Phi-3 slices its fused qkv at config.num_attention_heads x head_dim): the pruned
# attention module gets its own shallow copy of the config with that key set.
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
    up: str | None  # FFN input projection (None when fused with the gate in `gate_up`)
    down: str
    gate: str | None  # gated FFN (SwiGLU/GeGLU) when not None
    norms: tuple[str, ...]
    attn_attrs: dict[str, AttrQuantity]  # attention-module attributes tied to head counts
    qkv: str | None = None  # fused q/k/v module path
    gate_up: str | None = None  # fused gated FFN input: output is [gate | up], each channels wide (Phi-3)
    q_norm: str | None = None  # per-head query/key norms, when the layer has them (optional modules)
    k_norm: str | None = None
    qk_norm_kind: QKNormKind = "head_dim"
    parallel: bool = False  # attention and FFN both read one norm's output and are summed (Phi, Cohere)
    heads_refused: str | None = None  # why heads cannot be removed exactly (plans removing heads are refused)
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
    # "declared" for table entries; a spec built by recognition says which layout it matched
    origin: str = "declared"

    @property
    def gated(self) -> bool:
        return self.gate is not None or self.gate_up is not None

    @property
    def ffn_paths(self) -> tuple[str, ...]:
        return tuple(p for p in (self.up, self.gate, self.gate_up, self.down) if p)

    @property
    def attention_paths(self) -> tuple[str, ...]:
        return tuple(p for p in (self.q, self.k, self.v, self.qkv, self.o) if p)

    def layout(self) -> dict:
        """Everything but the name and origin: two specs with equal layouts prune identically."""
        return {k: v for k, v in self.__dict__.items() if k not in ("name", "origin")}


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


def _like(base: FamilySpec, name: str, **changes) -> FamilySpec:
    return replace(base, name=name, **changes)


# Llama's layout with per-head q/k RMSNorm over head_dim (kept whole when heads go).
_QWEN3 = _like(_LLAMA, "qwen3", q_norm="self_attn.q_norm", k_norm="self_attn.k_norm")
register("qwen3", _QWEN3)
# Gemma: Llama's layout, GeGLU (gelu_pytorch_tanh gate), head_dim independent of hidden / heads,
# tied embeddings scaled by sqrt(hidden) (no effect on pruning). Gemma 2 adds pre/post FFN norms
# and logit soft-capping; Gemma 3 (text) adds q/k norms over head_dim.
_GEMMA2_NORMS = ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                 "post_feedforward_layernorm")
register("gemma", _like(_LLAMA, "gemma"))
register("gemma2", _like(_LLAMA, "gemma2", norms=_GEMMA2_NORMS, key_activation="hidden_activation"))
register("gemma3_text", _like(_QWEN3, "gemma3_text", norms=_GEMMA2_NORMS, key_activation="hidden_activation"))
# Phi-3 (and Phi-3.5/Phi-4-mini): fused [q | k | v] with GQA and fused [gate | up].
register(
    "phi3",
    _like(
        _LLAMA, "phi3", qkv_layout="fused_blocks", q=None, k=None, v=None, qkv="self_attn.qkv_proj",
        up=None, gate=None, gate_up="mlp.gate_up_proj",
        attn_attrs={"num_key_value_heads": "kv_heads", "num_key_value_groups": "groups",
                    "config.num_attention_heads": "heads"},
    ),
)
# Phi-1/1.5/2: attention and an fc1/fc2 GELU MLP in parallel from one LayerNorm, biases, partial
# rotary, optional q/k LayerNorm over head_dim. That norm is built hidden / heads wide, so a config
# with fewer heads would rebuild it at another width: no head_dim key, the dense head count stays.
register(
    "phi",
    _like(
        _LLAMA, "phi", o="self_attn.dense", up="mlp.fc1", gate=None, down="mlp.fc2", norms=("input_layernorm",),
        q_norm="self_attn.q_layernorm", k_norm="self_attn.k_layernorm", parallel=True, key_head_dim=None,
    ),
)
# Cohere (Command-R): parallel attention + SwiGLU from one LayerNorm; q/k LayerNorm shaped
# (heads, head_dim) when use_qk_norm, sliced with the heads.
register(
    "cohere",
    _like(_LLAMA, "cohere", norms=("input_layernorm",), q_norm="self_attn.q_norm", k_norm="self_attn.k_norm",
          qk_norm_kind="per_head", parallel=True),
)
# OLMo-2: Llama's projections, norms after attention and after the FFN (no input norm), and RMSNorm
# over the full q and k widths: layers and channels prune exactly, heads do not.
register(
    "olmo2",
    _like(
        _LLAMA, "olmo2", norms=("post_attention_layernorm", "post_feedforward_layernorm"),
        q_norm="self_attn.q_norm", k_norm="self_attn.k_norm", qk_norm_kind="full",
        heads_refused="its q/k RMSNorm spans all heads at once (heads x head_dim), so removing a head would "
                      "change how the others are normalised: pruned would not equal masked",
    ),
)
# StarCoder2: GQA with biases, ungated c_fc/c_proj GELU MLP.
register("starcoder2", _like(_LLAMA, "starcoder2", up="mlp.c_fc", gate=None, down="mlp.c_proj"))
# OPT: decoder-only, fc1/fc2 ReLU FFN directly in the layer, learned positions, and a projection of
# the embeddings in and out when word_embed_proj_dim != hidden (counted as embeddings).
register(
    "opt",
    FamilySpec(
        name="opt",
        layers="decoder.layers",
        embeddings=("decoder.embed_tokens", "decoder.embed_positions", "decoder.project_in", "decoder.project_out"),
        attention="self_attn",
        qkv_layout="split",
        q="self_attn.q_proj",
        k="self_attn.k_proj",
        v="self_attn.v_proj",
        o="self_attn.out_proj",
        up="fc1",
        gate=None,
        down="fc2",
        norms=("self_attn_layer_norm", "final_layer_norm"),
        attn_attrs={"num_heads": "heads"},
        key_intermediate="ffn_dim",
        key_activation="activation_function",
    ),
)
# DistilBERT: encoder, q_lin/k_lin/v_lin/out_lin, ffn.lin1/lin2.
register(
    "distilbert",
    FamilySpec(
        name="distilbert",
        layers="transformer.layer",
        embeddings=("embeddings",),
        attention="attention",
        qkv_layout="split",
        q="attention.q_lin",
        k="attention.k_lin",
        v="attention.v_lin",
        o="attention.out_lin",
        up="ffn.lin1",
        gate=None,
        down="ffn.lin2",
        norms=("sa_layer_norm", "output_layer_norm"),
        attn_attrs={"n_heads": "heads"},
        causal=False,
        key_layers="n_layers",
        key_heads="n_heads",
        key_intermediate="hidden_dim",
        key_activation="activation",
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
