"""PruningPlan: what to remove, as data.

A plan is JSON::

    {"format": "cascadeprune-plan/1",
     "remove": {"layers": [3],
                "heads": {"0": [1, 5]},          # query-head indices
                "channels": {"2": [7, 8, 9]}}}   # FFN intermediate indices

Every index refers to the ORIGINAL dense model, so plans from successive stages compose by
union: applying A then B gives the same model as applying ``A | B``.

Validation (:func:`validate`) runs before any tensor is touched. Each rule raises
:class:`~cascadeprune.errors.PlanError` with a message naming the layer and the rule:

- ``index``: an index is out of range (layers, heads, channels, or a layer key);
- ``duplicate``: an index is listed twice;
- ``all-layers``: every layer is removed;
- ``all-heads`` / ``all-channels``: a kept layer loses all its heads or channels (remove the layer);
- ``gqa-groups``: in a GQA layer, the KV groups that keep any query head keep unequal numbers.
  A KV head whose query heads are all removed is removed with them.
- ``index-dependent``: layers are removed from a model whose math depends on the layer index
  (GPT-2 with ``scale_attn_by_inverse_layer_idx``).

Example::

    plan = PruningPlan.from_json(open("plan.json").read())
    validate(plan, dense_dims(model))
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from cascadeprune.arch.resolve import RECORD_KEY, Dims, Structure
from cascadeprune.errors import PlanError

FORMAT = "cascadeprune-plan/1"


def _frozen(d: dict) -> dict[int, frozenset[int]]:
    return {int(k): frozenset(v) for k, v in d.items() if v}


@dataclass(frozen=True)
class PruningPlan:
    """Units to remove, by ORIGINAL index. Empty by default."""

    layers: frozenset[int] = frozenset()
    heads: dict[int, frozenset[int]] = field(default_factory=dict)
    channels: dict[int, frozenset[int]] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "layers", frozenset(self.layers))
        object.__setattr__(self, "heads", _frozen(self.heads))
        object.__setattr__(self, "channels", _frozen(self.channels))

    # -- composition -------------------------------------------------------------------------
    def __or__(self, other: "PruningPlan") -> "PruningPlan":
        """Union: everything either plan removes."""
        merge = lambda a, b: {k: a.get(k, frozenset()) | b.get(k, frozenset()) for k in a.keys() | b.keys()}  # noqa: E731
        return PruningPlan(self.layers | other.layers, merge(self.heads, other.heads), merge(self.channels, other.channels))

    def is_empty(self) -> bool:
        return not (self.layers or self.heads or self.channels)

    def __eq__(self, other) -> bool:
        return isinstance(other, PruningPlan) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    # -- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "remove": {
                "layers": sorted(self.layers),
                "heads": {str(k): sorted(v) for k, v in sorted(self.heads.items())},
                "channels": {str(k): sorted(v) for k, v in sorted(self.channels.items())},
            },
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @staticmethod
    def from_dict(data: dict, source: str = "plan") -> "PruningPlan":
        """Parse and check the format; duplicates and malformed entries raise PlanError."""
        if not isinstance(data, dict):
            raise PlanError(f"{source}: a plan must be a JSON object, got {type(data).__name__}")
        if data.get("format") != FORMAT:
            raise PlanError(f"{source}: 'format' must be {FORMAT!r}, got {data.get('format')!r}")
        remove = data.get("remove")
        if not isinstance(remove, dict):
            raise PlanError(f"{source}: 'remove' must be an object with layers/heads/channels")
        unknown = set(remove) - {"layers", "heads", "channels"}
        if unknown:
            raise PlanError(f"{source}: unknown key(s) in 'remove': {sorted(unknown)} (allowed: layers, heads, channels)")
        layers = _int_list(remove.get("layers", []), f"{source}: remove.layers")
        per_layer = {}
        for kind in ("heads", "channels"):
            entries = remove.get(kind, {})
            if not isinstance(entries, dict):
                raise PlanError(f"{source}: remove.{kind} must map layer index (string) -> list of indices")
            per_layer[kind] = {}
            for key, idx in entries.items():
                try:
                    layer = int(key)
                except (TypeError, ValueError):
                    raise PlanError(f"{source}: remove.{kind} has a non-integer layer key {key!r}") from None
                if layer in per_layer[kind]:
                    raise PlanError(f"[duplicate] {source}: remove.{kind} lists layer {layer} twice")
                per_layer[kind][layer] = _int_list(idx, f"{source}: remove.{kind}[{key}]")
        return PruningPlan(frozenset(layers), per_layer["heads"], per_layer["channels"])

    @staticmethod
    def from_json(text: str, source: str = "plan") -> "PruningPlan":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise PlanError(f"{source}: not valid JSON ({e})") from None
        return PruningPlan.from_dict(data, source)

    @staticmethod
    def load(path) -> "PruningPlan":
        try:
            text = open(path).read()
        except OSError as e:
            raise PlanError(f"cannot read plan file {path}: {e.strerror}") from None
        return PruningPlan.from_json(text, source=str(path))


def applied_plan(structure: Structure) -> "PruningPlan":
    """The cumulative plan already applied to a resolved model (empty for a dense model)."""
    rec = structure.record
    return PruningPlan.from_dict(rec, source=f"config.{RECORD_KEY}") if rec else PruningPlan()


def _int_list(values, where: str) -> list[int]:
    if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise PlanError(f"[index] {where} must be a list of integers, got {values!r}")
    seen = set()
    for v in values:
        if v in seen:
            raise PlanError(f"[duplicate] {where} lists index {v} twice")
        seen.add(v)
    return values


def validate(plan: PruningPlan, dims: Dims, index_dependent: str | None = None) -> None:
    """Raise PlanError if ``plan`` cannot be applied to a dense model of shape ``dims``.

    ``index_dependent`` names a config option that makes layer math depend on the layer index;
    when set, removing layers is refused.
    """
    L, H, C, D = dims.num_layers, dims.num_heads, dims.intermediate_size, dims.group_size
    bad = sorted(i for i in plan.layers if not 0 <= i < L)
    if bad:
        raise PlanError(f"[index] layer index {bad[0]} is out of range: the model has {L} layers (0..{L - 1})")
    if len(plan.layers) >= L:
        raise PlanError(f"[all-layers] the plan removes all {L} layers; at least one must stay")
    if plan.layers and index_dependent:
        raise PlanError(
            f"[index-dependent] removing layers changes this model's math: its config sets {index_dependent}=True"
        )
    for kind, n in (("heads", H), ("channels", C)):
        for layer, idx in getattr(plan, kind).items():
            if not 0 <= layer < L:
                raise PlanError(f"[index] {kind}: layer {layer} is out of range: the model has {L} layers")
            out = sorted(i for i in idx if not 0 <= i < n)
            if out:
                raise PlanError(f"[index] layer {layer}: {kind[:-1]} index {out[0]} is out of range 0..{n - 1}")
            if layer in plan.layers:
                continue  # the whole layer goes; its units do not matter
            if len(idx) >= n:
                raise PlanError(
                    f"[all-{kind}] layer {layer}: the plan removes all {n} {kind}; remove the layer instead"
                )
    if D > 1:
        for layer, idx in plan.heads.items():
            if layer in plan.layers:
                continue
            kept = [D - sum(1 for h in idx if h // D == g) for g in range(H // D)]
            live = sorted({k for k in kept if k})
            if len(live) > 1:
                raise PlanError(
                    f"[gqa-groups] layer {layer}: KV groups would keep unequal numbers of query heads "
                    f"{kept} (group size {D}); remove the same number of query heads from every kept group"
                )


def random_plan(dims: Dims, rng: random.Random, layers: float = 0.0, heads: float = 0.0, channels: float = 0.0,
                uniform: bool = False) -> PruningPlan:
    """A random valid plan removing about the given fractions of each granularity.

    ``uniform=True`` removes the same number of heads/channels from every layer. For GQA, heads
    are removed as an equal number of query heads per KV group, or as whole groups. Used by tests
    and by the ``random`` criterion baseline.
    """
    L, H, C, D = dims.num_layers, dims.num_heads, dims.intermediate_size, dims.group_size
    n_layers = min(L - 1, round(layers * L))
    removed_layers = frozenset(rng.sample(range(L), n_layers))
    n_groups = H // D

    def pick_heads(n_remove_frac: float) -> list[int]:
        if D == 1:
            k = min(H - 1, round(n_remove_frac * H))
            return rng.sample(range(H), k)
        # GQA: either whole groups, or the same count from every group
        if rng.random() < 0.5 and n_groups > 1:
            g = min(n_groups - 1, round(n_remove_frac * n_groups))
            return [grp * D + j for grp in rng.sample(range(n_groups), g) for j in range(D)]
        k = min(D - 1, round(n_remove_frac * D))
        return [grp * D + j for grp in range(n_groups) for j in rng.sample(range(D), k)]

    head_map, chan_map = {}, {}
    fixed_heads = pick_heads(heads) if uniform else None
    k_chan = min(C - 1, round(channels * C))
    for layer in range(L):
        if heads:
            chosen = list(fixed_heads) if uniform else pick_heads(heads * rng.uniform(0.5, 1.5))
            if chosen:
                head_map[layer] = chosen
        if channels:
            k = k_chan if uniform else min(C - 1, round(channels * C * rng.uniform(0.5, 1.5)))
            if k:
                chan_map[layer] = rng.sample(range(C), k)
    return PruningPlan(removed_layers, head_map, chan_map)
