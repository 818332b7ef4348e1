"""Resolve a model once into a frozen structure of module references.

``resolve(model)`` reads the family's table entry, finds every layer and projection, and works
out which units of the ORIGINAL dense model each layer still holds (from the cumulative plan the
surgery records in ``config.cascadeprune``). It checks the weights agree with that bookkeeping,
so a structure that resolves is a structure whose invariants hold.

Example::

    s = resolve(model)
    s.family.name, s.dims.num_heads, [len(l.heads) for l in s.layers]
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from cascadeprune.arch.table import FAMILIES, FamilySpec
from cascadeprune.errors import CascadePruneError, UnsupportedArchitectureError

RECORD_KEY = "cascadeprune"  # config attribute holding the cumulative plan and the dense config


@dataclass(frozen=True)
class Dims:
    """Shape of the dense (original) model; plan indices refer to these."""

    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    hidden_size: int

    @property
    def group_size(self) -> int:
        """D = n_q / n_kv: query heads sharing one KV head (1 for MHA)."""
        return self.num_heads // self.num_kv_heads


@dataclass(frozen=True)
class LayerRefs:
    """One transformer block: its modules and the ORIGINAL indices of the units it keeps."""

    module: nn.Module
    attention: nn.Module
    o: nn.Module
    up: nn.Module | None
    down: nn.Module
    gate: nn.Module | None
    q: nn.Module | None
    k: nn.Module | None
    v: nn.Module | None
    qkv: nn.Module | None
    gate_up: nn.Module | None
    q_norm: nn.Module | None
    k_norm: nn.Module | None
    orig_index: int
    heads: tuple[int, ...]
    kv_heads: tuple[int, ...]
    channels: tuple[int, ...]


@dataclass(frozen=True)
class Structure:
    model: nn.Module
    family: FamilySpec
    dims: Dims
    layer_list: nn.ModuleList
    layers: tuple[LayerRefs, ...]
    record: dict | None  # the cumulative record, None for an unpruned model

    @property
    def is_gqa(self) -> bool:
        return self.dims.num_kv_heads != self.dims.num_heads

    def per_layer_shapes(self) -> list[dict]:
        return [
            {"layer": l.orig_index, "heads": len(l.heads), "kv_heads": len(l.kv_heads), "channels": len(l.channels)}
            for l in self.layers
        ]


@dataclass(frozen=True)
class _Removed:
    """The recorded cumulative removals (plain data; validation lives in cascadeprune.plan)."""

    layers: frozenset
    heads: dict
    channels: dict

    @staticmethod
    def of(rec: dict | None) -> "_Removed":
        r = (rec or {}).get("remove", {})
        return _Removed(
            frozenset(r.get("layers", ())),
            {int(k): frozenset(v) for k, v in r.get("heads", {}).items()},
            {int(k): frozenset(v) for k, v in r.get("channels", {}).items()},
        )


def config_dims(config, family: FamilySpec) -> Dims:
    """Dims of a dense config, read through the family's config keys."""
    hidden = config.hidden_size
    heads = getattr(config, family.key_heads)
    kv = getattr(config, family.key_kv_heads, None) if family.key_kv_heads else None
    head_dim = getattr(config, family.key_head_dim, None) if family.key_head_dim else None
    inter = getattr(config, family.key_intermediate, None)
    return Dims(
        num_layers=getattr(config, family.key_layers),
        num_heads=heads,
        num_kv_heads=kv or heads,
        head_dim=head_dim or hidden // heads,
        intermediate_size=inter or family.default_intermediate_multiplier * hidden,
        hidden_size=hidden,
    )


def base_model_of(model: nn.Module) -> nn.Module:
    """The transformer trunk without task heads (HF's ``base_model``), or the model itself."""
    return getattr(model, "base_model", model)


def record_of(config) -> dict | None:
    rec = getattr(config, RECORD_KEY, None)
    return rec if rec else None


def spec_for(model: nn.Module) -> FamilySpec:
    """The table entry for ``model``'s ``model_type``, or a spec recognised from its layout.

    A ``model_type`` with no entry is matched once against the table's layouts and verified on
    the spot (:mod:`cascadeprune.arch.recognise`); failing that, the error names the mismatch."""
    config = getattr(model, "config", None)
    if config is None:  # e.g. a plain torch module: nothing here for a transformer tool to find
        raise UnsupportedArchitectureError(f"{type(model).__name__} is not a Hugging Face transformer (no config); "
                                           "cascadeprune prunes transformer blocks only")
    model_type = config.model_type
    if model_type in FAMILIES:
        return FAMILIES[model_type]
    from cascadeprune.arch.recognise import recognise

    return recognise(model)


def optional_submodule(root: nn.Module, path: str | None) -> nn.Module | None:
    """``root.get_submodule(path)``, or None when the path is not set or the module is absent
    (optional parts: q/k norms switched off by the config, OPT's embedding projections)."""
    if not path:
        return None
    try:
        return root.get_submodule(path)
    except AttributeError:
        return None


def dense_dims(model: nn.Module) -> Dims:
    family = spec_for(model)
    rec = record_of(model.config)
    if rec is None:
        return config_dims(model.config, family)
    return Dims(**rec["base_dims"])


def resolve(model: nn.Module) -> Structure:
    """Find every layer and projection of ``model`` through the architecture table."""
    family = spec_for(model)  # raises first for a model that is not a Hugging Face transformer
    config = model.config
    rec = record_of(config)
    dims = dense_dims(model)
    removed = _Removed.of(rec)
    base = base_model_of(model)
    try:
        layer_list = base.get_submodule(family.layers)
    except AttributeError as e:
        raise CascadePruneError(
            f"{family.name}: no layer list at {family.layers!r} in {type(base).__name__} "
            "(check cascadeprune.arch.table.FAMILIES)"
        ) from e
    kept_layers = [i for i in range(dims.num_layers) if i not in removed.layers]
    if len(kept_layers) != len(layer_list):
        raise CascadePruneError(
            f"{family.name}: the model has {len(layer_list)} layers but its recorded plan keeps "
            f"{len(kept_layers)} of {dims.num_layers}"
        )
    layers = []
    for module, orig in zip(layer_list, kept_layers):
        heads = tuple(h for h in range(dims.num_heads) if h not in removed.heads.get(orig, ()))
        kv = tuple(sorted({h // dims.group_size for h in heads}))
        channels = tuple(c for c in range(dims.intermediate_size) if c not in removed.channels.get(orig, ()))
        get = lambda path: module.get_submodule(path) if path else None  # noqa: E731
        maybe = lambda path: optional_submodule(module, path)  # noqa: E731
        refs = LayerRefs(
            module=module,
            attention=get(family.attention),
            o=get(family.o),
            up=get(family.up),
            down=get(family.down),
            gate=get(family.gate),
            q=get(family.q),
            k=get(family.k),
            v=get(family.v),
            qkv=get(family.qkv),
            gate_up=get(family.gate_up),
            q_norm=maybe(family.q_norm),
            k_norm=maybe(family.k_norm),
            orig_index=orig,
            heads=heads,
            kv_heads=kv,
            channels=channels,
        )
        _check_layer(refs, family, dims)
        layers.append(refs)
    return Structure(model, family, dims, layer_list, tuple(layers), rec)


def in_features(module: nn.Module, family: FamilySpec) -> int:
    w = module.weight
    return w.shape[0] if family.weight_layout == "conv1d" else w.shape[1]


def out_features(module: nn.Module, family: FamilySpec) -> int:
    w = module.weight
    return w.shape[1] if family.weight_layout == "conv1d" else w.shape[0]


def _check_layer(l: LayerRefs, family: FamilySpec, dims: Dims) -> None:
    """Invariants: heads x head_dim = projection widths, channels = FFN widths."""
    hd = dims.head_dim
    nq, nkv, nc = len(l.heads), len(l.kv_heads), len(l.channels)
    expect = {("o", "in"): nq * hd, ("down", "in"): nc}
    if l.up is not None:
        expect[("up", "out")] = nc
    if l.gate is not None:
        expect[("gate", "out")] = nc
    if l.gate_up is not None:
        expect[("gate_up", "out")] = 2 * nc
    if family.qkv_layout == "split":
        expect.update({("q", "out"): nq * hd, ("k", "out"): nkv * hd, ("v", "out"): nkv * hd})
    elif family.qkv_layout == "fused_blocks":
        expect[("qkv", "out")] = (nq + 2 * nkv) * hd
    else:
        expect[("qkv", "out")] = 3 * nq * hd
    norm_rows = {"head_dim": (hd, hd), "per_head": (nq, nkv), "full": (nq * hd, nkv * hd)}[family.qk_norm_kind]
    for name, want in zip(("q_norm", "k_norm"), norm_rows):
        norm = getattr(l, name)
        got = None if norm is None else getattr(norm, "weight", None)
        if got is not None and got.shape[0] != want:
            raise CascadePruneError(
                f"{family.name} layer {l.orig_index}: {name} weight is {tuple(got.shape)}, expected {want} rows "
                f"({family.qk_norm_kind} q/k norm; {nq} heads, {nkv} KV heads, head_dim {hd})"
            )
    for (name, side), want in expect.items():
        module = getattr(l, name)
        got = in_features(module, family) if side == "in" else out_features(module, family)
        if got != want:
            raise CascadePruneError(
                f"{family.name} layer {l.orig_index}: {name} has {got} {side}put features, expected {want} "
                f"({nq} heads x {hd} head_dim, {nkv} KV heads, {nc} channels)"
            )
