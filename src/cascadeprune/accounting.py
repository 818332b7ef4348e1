"""Parameter and FLOP accounting, and THE compression ratio.

The compression ratio is defined on transformer-block parameters only:
``compression_ratio = block params of the dense backbone / block params of the pruned one``.
Embeddings, task heads and everything else are reported separately (:func:`param_breakdown`).

Example::

    ratio = compression_ratio(dense_model, pruned_model)     # e.g. 2.47
    predict_block_params(dense_model, plan)                  # before cutting anything
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from cascadeprune.arch.resolve import (
    LayerRefs, Structure, base_model_of, in_features, optional_submodule, out_features, resolve,
)
from cascadeprune.plan import PruningPlan, applied_plan


def _count(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def param_breakdown(model: nn.Module) -> dict[str, int]:
    """Parameters split into embeddings, transformer blocks, head (outside the trunk) and other.

    Tied weights are counted once (in embeddings)."""
    s = resolve(model)
    base = base_model_of(model)
    seen: set[int] = set()

    def count(modules) -> int:
        n = 0
        for m in modules:
            for p in m.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    n += p.numel()
        return n

    emb = count(m for m in (optional_submodule(base, p) for p in s.family.embeddings) if m is not None)
    blocks = count([s.layer_list])
    other = count([base])
    head = count([model])
    return {"embeddings": emb, "blocks": blocks, "other": other, "head": head, "total": emb + blocks + other + head}


def block_params(model: nn.Module) -> int:
    """Parameters inside the transformer blocks (what the compression ratio counts)."""
    return _count(resolve(model).layer_list)


def compression_ratio(dense: nn.Module | int, pruned: nn.Module | int) -> float:
    """Dense block parameters / pruned block parameters (models or counts)."""
    d = dense if isinstance(dense, int) else block_params(dense)
    p = pruned if isinstance(pruned, int) else block_params(pruned)
    if p <= 0:
        raise ValueError("the pruned model has no block parameters")
    return d / p


@dataclass(frozen=True)
class UnitCosts:
    """Parameters one unit carries in a layer (identical in every layer of a model)."""

    q_head: int  # a query head (for fused or MHA layouts: with its key and value)
    kv_head: int  # a KV head in split GQA/MHA layouts (0 when fused)
    channel: int  # an FFN channel (up, gate and down slices)
    fixed: int  # what a layer has besides its units (norms, output biases)


def _rowcost(m: nn.Module | None, s: Structure) -> int:
    """Parameters per output feature: one row of the weight plus its bias."""
    if m is None:
        return 0
    return in_features(m, s.family) + (1 if getattr(m, "bias", None) is not None else 0)


def unit_costs(s: Structure) -> UnitCosts:
    l: LayerRefs = s.layers[0]
    hd, fam = s.dims.head_dim, s.family
    o_col = out_features(l.o, fam)
    if fam.qkv_layout == "split":
        q, kv = hd * _rowcost(l.q, s), hd * (_rowcost(l.k, s) + _rowcost(l.v, s))
    elif fam.qkv_layout == "fused_blocks" and s.is_gqa:  # [q | k | v] with fewer KV heads (Phi-3)
        q, kv = hd * _rowcost(l.qkv, s), 2 * hd * _rowcost(l.qkv, s)
    else:
        q, kv = 3 * hd * _rowcost(l.qkv, s), 0
    q += hd * o_col
    if fam.qk_norm_kind == "per_head":  # a (heads, head_dim) norm row goes with its head
        q += _count(l.q_norm) // len(l.heads)
        kv += _count(l.k_norm) // len(l.kv_heads)
    ch = _rowcost(l.up, s) + _rowcost(l.gate, s) + 2 * _rowcost(l.gate_up, s) + out_features(l.down, fam)
    fixed = _count(l.module) - len(l.heads) * q - len(l.kv_heads) * kv - len(l.channels) * ch
    return UnitCosts(q, kv, ch, fixed)


@dataclass(frozen=True)
class LayerShape:
    """What one kept block keeps, by ORIGINAL index (the fields selection reads from ``LayerRefs``)."""

    orig_index: int
    heads: tuple[int, ...]
    kv_heads: tuple[int, ...]
    channels: tuple[int, ...]


@dataclass(frozen=True)
class Shape:
    """A model's block structure as plain data: which units each kept layer keeps, and what each unit costs.

    Selection (``methods.select``) reads a Shape exactly as it reads a resolved ``Structure``, so the
    planner can run the engine's own cut schedule on shapes alone (no weights, no calibration) and
    predict what a run removes. ``after(plan)`` is the shape once ``plan`` (original indices) is applied.

    Example::

        sh = Shape.of(model)
        sh.after(PruningPlan(layers={2})).block_params()  == predict_block_params(model, PruningPlan(layers={2}))
    """

    family: object  # the FamilySpec
    dims: object  # the dense Dims
    costs: UnitCosts
    layers: tuple[LayerShape, ...]
    applied: PruningPlan = field(default_factory=PruningPlan)

    @staticmethod
    def of(model_or_structure) -> "Shape":
        s = model_or_structure if isinstance(model_or_structure, (Structure, Shape)) else resolve(model_or_structure)
        if isinstance(s, Shape):
            return s
        layers = tuple(LayerShape(l.orig_index, tuple(l.heads), tuple(l.kv_heads), tuple(l.channels))
                       for l in s.layers)
        return Shape(s.family, s.dims, unit_costs(s), layers, applied_plan(s))

    def after(self, plan: PruningPlan) -> "Shape":
        D = self.dims.group_size
        layers = []
        for l in self.layers:
            if l.orig_index in plan.layers:
                continue
            heads = tuple(h for h in l.heads if h not in plan.heads.get(l.orig_index, ()))
            channels = tuple(c for c in l.channels if c not in plan.channels.get(l.orig_index, ()))
            layers.append(LayerShape(l.orig_index, heads, tuple(sorted({h // D for h in heads})), channels))
        return Shape(self.family, self.dims, self.costs, tuple(layers), self.applied | plan)

    def layer_params(self, l) -> int:
        c = self.costs
        return c.fixed + len(l.heads) * c.q_head + len(l.kv_heads) * c.kv_head + len(l.channels) * c.channel

    def block_params(self) -> int:
        return sum(self.layer_params(l) for l in self.layers)


def costs_of(s) -> UnitCosts:
    """Unit costs of a resolved Structure or a Shape."""
    return s.costs if isinstance(s, Shape) else unit_costs(s)


def layer_params_of(s, l) -> int:
    """Parameters of one kept layer of a Structure (counted on its module) or a Shape (from unit costs)."""
    return s.layer_params(l) if isinstance(s, Shape) else _count(l.module)


def predict_block_params(model: nn.Module, plan: PruningPlan) -> int:
    """Block parameters ``model`` would have after applying ``plan`` (without applying it)."""
    s = resolve(model)
    return _block_params_after(s, applied_plan(s) | plan)


def dense_block_params(model: nn.Module) -> int:
    """Block parameters of the dense model a (possibly pruned) model came from."""
    return _block_params_after(resolve(model), PruningPlan())


def _block_params_after(s: Structure, total: PruningPlan) -> int:
    c, d = unit_costs(s), s.dims
    n = 0
    for i in range(d.num_layers):
        if i in total.layers:
            continue
        heads = [h for h in range(d.num_heads) if h not in total.heads.get(i, ())]
        kv = {h // d.group_size for h in heads}
        channels = d.intermediate_size - len(total.channels.get(i, ()))
        n += c.fixed + len(heads) * c.q_head + len(kv) * c.kv_head + channels * c.channel
    return n


def flops_per_token(model: nn.Module, context: int = 512) -> dict[str, int]:
    """Forward FLOPs for one token at a given context length (2 FLOPs per multiply-add).

    ``linear`` counts the block projections, ``attention`` the score and value products over
    ``context`` positions; embeddings lookups are free; the LM head is reported apart."""
    s = resolve(model)
    linear = sum(2 * p.numel() for l in s.layers for n, p in l.module.named_parameters() if n.endswith("weight") and p.dim() == 2)
    attention = sum(4 * len(l.heads) * s.dims.head_dim * context for l in s.layers)
    out_emb = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    head = 2 * out_emb.weight.numel() if out_emb is not None else 0
    return {"linear": linear, "attention": attention, "lm_head": head, "total": linear + attention + head, "context": context}
