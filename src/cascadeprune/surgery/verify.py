"""The on-the-spot check for a recognised layout: pruning must equal masking on the real class.

:func:`verify_spec` builds a tiny random model of the same class as ``model`` (3 layers, 4 query
heads, hidden 32, 48 FFN channels, a 64-token vocabulary; the config is the model's own with those
keys shrunk through the candidate's config keys), applies a plan that removes a layer, heads (a
whole KV group and one head per group where there is GQA) and channels, and compares with
masking. :mod:`cascadeprune.wiring` registers it with :mod:`cascadeprune.arch.recognise`.

Example::

    verify_spec(model, candidate_spec)   # raises AssertionError naming the gap, or returns
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from cascadeprune.arch.table import FamilySpec
from cascadeprune.plan import PruningPlan

TOL = 1e-5
_VOCAB = 64


def tiny_twin(model: nn.Module, spec: FamilySpec, seed: int = 0) -> nn.Module:
    """A tiny random model of ``type(model)`` whose config is ``model``'s, shrunk through ``spec``'s keys."""
    config = copy.deepcopy(model.config)
    layers = getattr(config, spec.key_layers)
    per_layer = {k: v for k, v in config.to_dict().items() if isinstance(v, list) and len(v) == layers and layers > 1}
    dense_heads = getattr(config, spec.key_heads)
    dense_kv = getattr(config, spec.key_kv_heads, None) if spec.key_kv_heads else None
    kv = 4 if not dense_kv or dense_kv == dense_heads else (1 if dense_kv == 1 else 2)
    values = {spec.key_layers: 3, spec.key_heads: 4, "hidden_size": 32}
    if spec.key_kv_heads:
        values[spec.key_kv_heads] = kv
    if spec.key_head_dim:
        values[spec.key_head_dim] = 8
    if spec.key_intermediate:
        values[spec.key_intermediate] = 48
    if hasattr(config, "vocab_size"):
        values["vocab_size"] = _VOCAB
    for key, value in values.items():
        setattr(config, key, value)
    for key in ("pad_token_id", "bos_token_id", "eos_token_id"):
        if isinstance(getattr(config, key, None), int) and getattr(config, key) >= _VOCAB:
            setattr(config, key, 0)
    for key, value in per_layer.items():  # per-layer lists (layer_types, ...): the first 3 layers' kinds, cycled
        setattr(config, key, [value[i % len(value)] for i in range(3)])
    # eager attention: the reference implementation, on any device, and the strictest check (it reads
    # every head-count attribute, e.g. num_key_value_groups, which SDPA's GQA path can ignore)
    config._attn_implementation = "eager"
    if hasattr(config, "initializer_range"):
        config.initializer_range = 0.1  # large enough that a wrong cut shows above the tolerance
    torch.manual_seed(seed)
    return type(model)(config).float().eval()


def _plan(heads: int, kv: int, channels: int) -> PruningPlan:
    D = heads // kv
    if D > 1 and kv > 1:  # a whole KV group in layer 0, one head per group in layer 2
        head_map = {0: set(range(D)), 2: {g * D for g in range(kv)}}
    elif D > 1:  # MQA: query heads only
        head_map = {0: {0}, 2: {1, 2}}
    else:
        head_map = {0: {1}, 2: {0, 3}}
    return PruningPlan(layers={1}, heads=head_map, channels={0: set(range(0, channels, 3)), 2: {1, 5, 7}})


@torch.no_grad()
def verify_spec(model: nn.Module, spec: FamilySpec) -> None:
    """Raise AssertionError unless pruning equals masking (within 1e-5) on a tiny twin of ``model``."""
    from cascadeprune.arch.resolve import resolve
    from cascadeprune.surgery.apply import apply_plan
    from cascadeprune.surgery.masking import mask_plan

    tiny = tiny_twin(model, spec)
    dims = resolve(tiny).dims
    plan = _plan(dims.num_heads, dims.num_kv_heads, dims.intermediate_size)
    if spec.heads_refused:  # the layout prunes layers and channels only
        plan = PruningPlan(plan.layers, {}, plan.channels)
    g = torch.Generator().manual_seed(0)
    batch = {"input_ids": torch.randint(2, _VOCAB, (2, 8), generator=g),
             "attention_mask": torch.ones(2, 8, dtype=torch.long)}
    dense = tiny(**batch)[0]
    with mask_plan(tiny, plan):
        masked = tiny(**batch)[0]
    pruned = apply_plan(tiny, plan)(**batch)[0]
    gap = (pruned - masked).abs().max().item()
    assert gap <= TOL, f"max |pruned - masked| = {gap:.2e} > {TOL}"
    assert (dense - masked).abs().max().item() > TOL, "the check plan did not change the output (vacuous check)"
