"""Bias compensation (FLAP): fold the mean contribution of removed units into the output bias.

A removed head or FFN channel fed the attention output projection (or the FFN down projection)
with an input whose calibration mean is m_j. Removing it takes away W[:, j] * m_j on average;
adding that vector to the projection's bias keeps the projection's MEAN output unchanged on the
calibration data (only the fluctuation around the mean is lost). Call this BEFORE ``apply_plan``
(positions are looked up in the model as it is now).

A projection without a bias (Llama-family o_proj/down_proj) gets one only where the model's own
config has a switch that makes its modeling code build that bias (Llama's ``attention_bias`` /
``mlp_bias``, also Granite and SmolLM3): the switch is turned on, every projection it governs gets a
zero bias (so the state dict matches what a stock loader builds from the config), and the
compensation goes into the new bias. Which projections a switch governs is not guessed: a one-layer
sibling of the model is built on the meta device with the switch on and its projections are read.
Where no switch exists (Mistral, Qwen2, Phi-3) the model is refused: a bias created without one would
be dropped by a stock loader, so the saved model would silently lose it.

Example::

    compensate_bias(model, plan, o_mean={0: tensor[...]}, down_mean={0: tensor[...]})
    apply_plan(model, plan, inplace=True)
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from cascadeprune.arch.resolve import base_model_of, resolve
from cascadeprune.errors import CascadePruneError
from cascadeprune.plan import PruningPlan


def _columns(proj: nn.Module, idx: list[int], layout: str) -> torch.Tensor:
    """The weight columns (out, len(idx)) that read input features ``idx``, in float64."""
    w = proj.weight.detach().double()
    i = torch.as_tensor(idx, dtype=torch.long)
    return w.index_select(0, i).t() if layout == "conv1d" else w.index_select(1, i)


@torch.no_grad()
def compensate_bias(model: nn.Module, plan: PruningPlan, o_mean: dict[int, torch.Tensor],
                    down_mean: dict[int, torch.Tensor]) -> None:
    """Add the calibration-mean output of the units ``plan`` removes to the o/down projection biases.

    ``o_mean`` / ``down_mean``: per ORIGINAL layer index, the mean over calibration tokens of each input
    feature of the attention output / FFN down projection (the model's current features). Nothing is
    changed when a projection that needs compensating has no bias (CascadePruneError)."""
    s = resolve(model)
    hd, layout = s.dims.head_dim, s.family.weight_layout
    work = []  # (projection, its path in a layer, input features removed, their means, what)
    for l in s.layers:
        if l.orig_index in plan.layers:
            continue
        gone_heads = [p for p, h in enumerate(l.heads) if h in plan.heads.get(l.orig_index, ())]
        if gone_heads:
            work.append((l.o, s.family.o, [p * hd + j for p in gone_heads for j in range(hd)], o_mean[l.orig_index],
                         "the attention output projection"))
        gone_ch = [p for p, c in enumerate(l.channels) if c in plan.channels.get(l.orig_index, ())]
        if gone_ch:
            work.append((l.down, s.family.down, gone_ch, down_mean[l.orig_index], "the FFN down projection"))
    switches = _missing_bias_switches(model, {path for _, path, _, _, _ in work})
    for _, path, _, _, what in work:  # refuse before touching anything
        if path in switches and switches[path] is None:
            raise CascadePruneError(
                f"bias compensation needs a bias on {what}, and this {s.family.name} model has none and no config "
                "switch that builds one (a bias created anyway would be lost by a stock loader); prune this "
                "model with a method without compensation")
    for key, paths in dict.fromkeys(switches.values()):
        enable_bias(model, key, paths)
    for proj, _, idx, mean, _ in work:
        i = torch.as_tensor(idx, dtype=torch.long)
        proj.bias += (_columns(proj, idx, layout) @ mean.double()[i]).to(proj.bias.dtype)


def bias_switch(model: nn.Module, path: str) -> tuple[str, tuple[str, ...]] | None:
    """The boolean config key that makes the modeling code give the layer projection ``path`` a bias, and
    every projection path that key gives one (the model's current layer paths), or None when no key does.

    Read off a one-layer sibling built on the meta device (no memory, no weights) with each false
    ``*_bias`` key of the config turned on in turn."""
    s = resolve(model)
    base = base_model_of(model)
    config = base.config
    candidates = [k for k, v in config.to_dict().items() if k.endswith("bias") and v is False]
    paths = [p for p in (*s.family.attention_paths, *s.family.ffn_paths)]
    for key in candidates:
        cfg = copy.deepcopy(config)
        setattr(cfg, s.family.key_layers, 1)
        setattr(cfg, key, True)
        try:
            with torch.device("meta"):
                sibling = type(base)(cfg)
            layer = sibling.get_submodule(s.family.layers)[0]
            biased = tuple(p for p in paths if getattr(layer.get_submodule(p), "bias", None) is not None)
        except (TypeError, ValueError, AttributeError):
            # the class refuses the key (its config validation) or the layer lacks a projection path with it:
            # not a switch for this class. Anything else is a bug and propagates.
            continue
        if path in biased:
            return key, biased
    return None


@torch.no_grad()
def enable_bias(model: nn.Module, key: str, paths: tuple[str, ...]) -> None:
    """Turn config ``key`` on and give every projection at ``paths`` in every layer a zero bias (where it has
    none), so the model computes exactly what it did and saves what a stock loader rebuilds."""
    s = resolve(model)
    setattr(base_model_of(model).config, key, True)
    if getattr(model, "config", None) is not None and model.config is not base_model_of(model).config:
        setattr(model.config, key, True)
    out_dim = 1 if s.family.weight_layout == "conv1d" else 0
    for layer in s.layer_list:
        for p in paths:
            proj = layer.get_submodule(p)
            if getattr(proj, "bias", None) is None:
                w = proj.weight
                proj.bias = nn.Parameter(torch.zeros(w.shape[out_dim], dtype=w.dtype, device=w.device),
                                         requires_grad=w.requires_grad)


def ensure_bias(model: nn.Module) -> None:
    """Give the attention output and FFN down projections a bias through the config's switch where they have
    none (no-op where they have one, or where no switch exists: ``compensate_bias`` refuses those). Call it
    before planning a cut, so the zero biases are counted in the block parameters the cut aims at."""
    s = resolve(model)
    for key, paths in dict.fromkeys(v for v in _missing_bias_switches(model, {s.family.o, s.family.down}).values()
                                    if v):
        enable_bias(model, key, paths)


def _missing_bias_switches(model: nn.Module, paths: set[str]) -> dict[str, tuple[str, tuple[str, ...]] | None]:
    """For each layer projection path in ``paths`` that has no bias: the config switch that builds one
    (:func:`bias_switch`), or None where there is none. Paths that have a bias are left out."""
    first = resolve(model).layers[0].module
    return {p: bias_switch(model, p) for p in sorted(paths) if getattr(first.get_submodule(p), "bias", None) is None}
