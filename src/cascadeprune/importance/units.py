"""Weight slices per removal unit, in (out, in) orientation, for criteria to reduce.

A head's parts are its query rows, its output-projection columns and, in ``grouped`` mode, its
share (1/D) of the key and value rows of its KV group; fused layouts (GPT-2, GPT-NeoX) give the
head's own q, k and v rows. A channel's parts are its up row, gate row (gated FFNs) and down
column. ``naive`` mode keeps only the query rows (heads) or the up row (channels): single
projections scored independently, as a per-component criterion would, for studying the collapse
on GQA + SwiGLU.

Each part is ``(tensor [units, n], scale)``; criteria combine ``scale * reduce(tensor)``.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from cascadeprune.arch.resolve import LayerRefs, Structure

Get = Callable[[nn.Module], torch.Tensor]  # module -> its weight, or a tensor shaped like it (a gradient)
MODES = ("grouped", "naive")


def out_in(t: torch.Tensor, s: Structure) -> torch.Tensor:
    return t.t() if s.family.weight_layout == "conv1d" else t


def head_parts(l: LayerRefs, s: Structure, get: Get, mode: str = "grouped") -> list[tuple[torch.Tensor, float]]:
    nq, hd, D = len(l.heads), s.dims.head_dim, s.dims.group_size
    fam = s.family
    if fam.qkv_layout == "split":
        q = out_in(get(l.q), s).reshape(nq, -1)
        if mode == "naive":
            return [(q, 1.0)]
        # each query head's KV group: position of its KV head among the layer's kept KV heads
        kv_pos = torch.tensor([l.kv_heads.index(h // D) for h in l.heads])
        k = out_in(get(l.k), s).reshape(len(l.kv_heads), -1)[kv_pos]
        v = out_in(get(l.v), s).reshape(len(l.kv_heads), -1)[kv_pos]
        group = [sum(1 for h in l.heads if h // D == g) for g in l.kv_heads]
        share = torch.tensor([1.0 / group[p] for p in kv_pos.tolist()])
        parts = [(q, 1.0), (k * share[:, None], 1.0), (v * share[:, None], 1.0)]
    else:
        w = out_in(get(l.qkv), s)
        if fam.qkv_layout == "fused_blocks":  # [q | k | v] blocks of nq * hd rows
            w = w.reshape(3, nq, hd, -1).transpose(0, 1)
        else:  # fused_heads: per head [q | k | v]
            w = w.reshape(nq, 3, hd, -1)
        parts = [(w[:, 0].reshape(nq, -1), 1.0)]
        if mode == "naive":
            return parts
        parts += [(w[:, 1].reshape(nq, -1), 1.0), (w[:, 2].reshape(nq, -1), 1.0)]
    o = out_in(get(l.o), s)  # (hidden, nq * hd): a head's columns
    parts.append((o.reshape(o.shape[0], nq, hd).transpose(0, 1).reshape(nq, -1), 1.0))
    return parts


def channel_parts(l: LayerRefs, s: Structure, get: Get, mode: str = "grouped") -> list[tuple[torch.Tensor, float]]:
    up = out_in(get(l.up), s)
    if mode == "naive":
        return [(up, 1.0)]
    parts = [(up, 1.0)]
    if l.gate is not None:
        parts.append((out_in(get(l.gate), s), 1.0))
    parts.append((out_in(get(l.down), s).t(), 1.0))  # columns of down -> rows
    return parts


def weight(m: nn.Module) -> torch.Tensor:
    return m.weight.detach()
