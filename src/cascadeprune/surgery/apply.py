"""Apply a PruningPlan: slice weights, update module attributes and the config together.

The model records the cumulative plan (in ORIGINAL indices) and its dense shape in
``config.cascadeprune``; a new plan is merged with that record, the union is validated against
the dense shape, and only the difference is cut. So applying A then B equals applying A | B.

Example::

    from cascadeprune import PruningPlan, apply_plan
    small = apply_plan(model, PruningPlan(layers={3}, heads={0: {1, 2}}))   # model is untouched
"""

from __future__ import annotations

import copy
import logging

from torch import nn

from cascadeprune.arch.resolve import RECORD_KEY, LayerRefs, Structure, base_model_of, resolve
from cascadeprune.errors import PlanError
from cascadeprune.plan import FORMAT, PruningPlan, applied_plan, validate
from cascadeprune.surgery.slicing import keep_inputs, keep_outputs, keep_rows

log = logging.getLogger(__name__)


def apply_plan(model: nn.Module, plan: PruningPlan, inplace: bool = False) -> nn.Module:
    """Remove the units named by ``plan`` (ORIGINAL indices) and return the pruned model.

    The plan (merged with what the model already had removed) is validated first; an invalid
    plan raises PlanError and leaves ``model`` untouched. Without ``inplace`` the model is
    copied first and the argument is never modified.
    """
    before = resolve(model)
    total = applied_plan(before) | plan
    if before.family.heads_refused and any(total.heads.values()):
        fam = before.family
        raise PlanError(f"[heads-refused] {fam.name}: heads cannot be removed: {fam.heads_refused}; "
                        "remove layers and channels only")
    validate(total, before.dims, _index_dependent(model.config, before))
    if not inplace:
        model = copy.deepcopy(model)
    s = resolve(model)
    for refs in s.layers:
        _prune_layer(refs, s, total)
    _drop_layers(s, total)
    _update_config(model.config, s, total)
    after = resolve(model)  # re-resolving checks every shape invariant
    log.info(
        "%s: layers %d -> %d, heads %d -> %d, channels %d -> %d",
        s.family.name,
        len(before.layers), len(after.layers),
        sum(len(l.heads) for l in before.layers), sum(len(l.heads) for l in after.layers),
        sum(len(l.channels) for l in before.layers), sum(len(l.channels) for l in after.layers),
    )
    return model


def _index_dependent(config, s: Structure) -> str | None:
    opt = s.family.index_dependent_option
    return opt if opt and getattr(config, opt, False) else None


def _positions(kept: tuple[int, ...], removed: frozenset[int]) -> list[int]:
    """Current positions (within ``kept``) of the units that survive ``removed``."""
    return [pos for pos, orig in enumerate(kept) if orig not in removed]


def _prune_layer(l: LayerRefs, s: Structure, total: PruningPlan) -> None:
    if l.orig_index in total.layers:
        return
    fam, hd = s.family, s.dims.head_dim
    heads = _positions(l.heads, total.heads.get(l.orig_index, frozenset()))
    if len(heads) < len(l.heads):
        surviving = [l.heads[p] for p in heads]
        kv_orig = sorted({h // s.dims.group_size for h in surviving})
        kv = [l.kv_heads.index(g) for g in kv_orig]
        rows = lambda positions: [p * hd + j for p in positions for j in range(hd)]  # noqa: E731
        n_now, kv_now = len(l.heads), len(l.kv_heads)
        if fam.qkv_layout == "split":
            keep_outputs(l.q, rows(heads), fam.weight_layout)
            keep_outputs(l.k, rows(kv), fam.weight_layout)
            keep_outputs(l.v, rows(kv), fam.weight_layout)
        elif fam.qkv_layout == "fused_blocks":  # [q | k | v]: n_now * hd, then kv_now * hd twice
            k0, v0 = n_now * hd, (n_now + kv_now) * hd
            keep = rows(heads) + [k0 + r for r in rows(kv)] + [v0 + r for r in rows(kv)]
            keep_outputs(l.qkv, keep, fam.weight_layout)
        else:  # fused_heads: per head [q_h | k_h | v_h], 3 * hd wide
            keep_outputs(l.qkv, [p * 3 * hd + j for p in heads for j in range(3 * hd)], fam.weight_layout)
        keep_inputs(l.o, rows(heads), fam.weight_layout)
        if fam.qk_norm_kind == "per_head":  # (heads, head_dim) norm weights go with their heads
            for norm, kept in ((l.q_norm, heads), (l.k_norm, kv)):
                if norm is not None:
                    keep_rows(norm, kept)
        counts = {"heads": len(heads), "kv_heads": len(kv), "groups": len(heads) // len(kv), "inner": len(heads) * hd}
        for attr, quantity in fam.attn_attrs.items():
            _set_attention_attr(l.attention, attr, counts[quantity])
    channels = _positions(l.channels, total.channels.get(l.orig_index, frozenset()))
    if len(channels) < len(l.channels):
        for proj in (l.up, l.gate):
            if proj is not None:
                keep_outputs(proj, channels, fam.weight_layout)
        if l.gate_up is not None:  # [gate | up], each len(l.channels) wide
            n = len(l.channels)
            keep_outputs(l.gate_up, channels + [n + c for c in channels], fam.weight_layout)
        keep_inputs(l.down, channels, fam.weight_layout)


def _set_attention_attr(attention: nn.Module, attr: str, value: int) -> None:
    """Set an attention attribute, or a key of the attention's own config copy ("config.<key>")."""
    if not attr.startswith("config."):
        setattr(attention, attr, value)
        return
    # The module reads this key from the config it shares with the whole model; give it its own
    # shallow copy (once) so that layers can differ. Its other keys stay those of the model.
    if not getattr(attention, "_cascadeprune_own_config", False):
        attention.config = copy.copy(attention.config)
        attention._cascadeprune_own_config = True
    setattr(attention.config, attr[len("config."):], value)


def _drop_layers(s: Structure, total: PruningPlan) -> None:
    kept = [l.module for l in s.layers if l.orig_index not in total.layers]
    if len(kept) == len(s.layers):
        return
    parent_path, _, name = s.family.layers.rpartition(".")
    base = base_model_of(s.model)
    parent = base.get_submodule(parent_path) if parent_path else base
    setattr(parent, name, nn.ModuleList(kept))
    # KV caches and generate() address layers by `layer_idx`: renumber every module that has one
    # (a transformers-wide convention, not a family-specific name).
    for new_idx, layer in enumerate(kept):
        for m in layer.modules():
            if hasattr(m, "layer_idx"):
                m.layer_idx = new_idx


def _update_config(config, s: Structure, total: PruningPlan) -> None:
    """Write the new shape into the config (per-layer max when layers differ) and the record."""
    fam, dims = s.family, s.dims
    base_config = s.record["base_config"] if s.record else config.to_dict()
    kept = [i for i in range(dims.num_layers) if i not in total.layers]
    heads = [dims.num_heads - len(total.heads.get(i, ())) for i in kept]
    kv = [len({h // dims.group_size for h in range(dims.num_heads) if h not in total.heads.get(i, ())}) for i in kept]
    chans = [dims.intermediate_size - len(total.channels.get(i, ())) for i in kept]
    # Per-layer lists (layer_types: sliding or full attention; SmolLM3's no_rope_layers; ...) follow
    # the kept layers, so a stock loader builds each kept layer as it was.
    for key, value in base_config.items():
        if isinstance(value, list) and len(value) == dims.num_layers and dims.num_layers > 1:
            setattr(config, key, [value[i] for i in kept])
    setattr(config, fam.key_layers, len(kept))
    heads_in_config = False
    if fam.key_head_dim:
        # head_dim stays explicit, otherwise it would be re-derived as hidden / heads.
        setattr(config, fam.key_head_dim, dims.head_dim)
        counts = {fam.key_heads: max(heads)} | ({fam.key_kv_heads: max(kv)} if fam.key_kv_heads else {})
        heads_in_config = _set_if_valid(config, counts)
    # Families that derive head_dim from hidden / heads (GPT-2, GPT-NeoX, BERT), and configs that
    # reject the new head count (Llama requires hidden % heads == 0 even with an explicit head_dim),
    # keep the dense head count; the true per-layer shape is in the record, and a stock loader
    # fails loudly on the size mismatch.
    setattr(config, fam.key_intermediate, max(chans))
    uniform = len(set(heads)) == 1 and len(set(kv)) == 1 and len(set(chans)) == 1
    heads_changed = max(heads) != dims.num_heads or max(kv) != dims.num_kv_heads
    record = total.to_dict()
    record.update(
        base_dims=dims.__dict__.copy(),
        base_config=base_config,
        uniform=uniform,
        # A stock `from_pretrained` rebuilds the right shapes only if every layer is alike and
        # the config holds the new head counts.
        stock_loadable=uniform and (not heads_changed or heads_in_config),
        per_layer=[{"layer": i, "heads": h, "kv_heads": k, "channels": c} for i, h, k, c in zip(kept, heads, kv, chans)],
    )
    assert record["format"] == FORMAT
    setattr(config, RECORD_KEY, record)


def _set_if_valid(config, values: dict) -> bool:
    """Set config attributes if the config's own validation accepts them; otherwise keep the old."""
    old = {k: getattr(config, k) for k in values}
    for k, v in values.items():
        setattr(config, k, v)
    try:
        config.validate()
        return True
    except Exception as e:
        log.info("config keeps %s: the new values %s fail its validation (%s)", old, values, e)
        for k, v in old.items():
            setattr(config, k, v)
        return False
