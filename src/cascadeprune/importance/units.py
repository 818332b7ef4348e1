"""Weight slices per removal unit, in (out, in) orientation, for criteria to reduce.

A head's parts are its query rows, its output-projection columns and, in ``grouped`` mode, its
share (1/D) of the key and value rows of its KV group (split or fused [q | k | v] blocks, as in
GPT-2 and Phi-3); GPT-NeoX's per-head fused layout gives the head's own q, k and v rows. A
channel's parts are its up row, gate row (gated FFNs; the two halves of a fused [gate | up] as in
Phi-3) and down column. ``naive`` mode keeps only the query rows (heads) or the up row (channels): single
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
    if fam.qkv_layout in ("split", "fused_blocks"):
        nkv = len(l.kv_heads)
        if fam.qkv_layout == "split":
            q, k, v = (out_in(get(m), s) for m in (l.q, l.k, l.v))
        else:  # [q | k | v] blocks: nq * hd rows, then nkv * hd rows twice
            q, k, v = out_in(get(l.qkv), s).split([nq * hd, nkv * hd, nkv * hd])
        q = q.reshape(nq, -1)
        if mode == "naive":
            return [(q, 1.0)]
        # each query head's KV group: position of its KV head among the layer's kept KV heads
        kv_pos = torch.tensor([l.kv_heads.index(h // D) for h in l.heads])
        k = k.reshape(nkv, -1)[kv_pos]
        v = v.reshape(nkv, -1)[kv_pos]
        group = [sum(1 for h in l.heads if h // D == g) for g in l.kv_heads]
        share = torch.tensor([1.0 / group[p] for p in kv_pos.tolist()])
        parts = [(q, 1.0), (k * share[:, None], 1.0), (v * share[:, None], 1.0)]
    else:  # fused_heads: per head [q | k | v]
        w = out_in(get(l.qkv), s).reshape(nq, 3, hd, -1)
        parts = [(w[:, 0].reshape(nq, -1), 1.0)]
        if mode == "naive":
            return parts
        parts += [(w[:, 1].reshape(nq, -1), 1.0), (w[:, 2].reshape(nq, -1), 1.0)]
    o = out_in(get(l.o), s)  # (hidden, nq * hd): a head's columns
    parts.append((o.reshape(o.shape[0], nq, hd).transpose(0, 1).reshape(nq, -1), 1.0))
    return parts


def channel_parts(l: LayerRefs, s: Structure, get: Get, mode: str = "grouped") -> list[tuple[torch.Tensor, float]]:
    if l.gate_up is not None:  # [gate | up], each channels wide
        gate, up = out_in(get(l.gate_up), s).chunk(2)
    else:
        up = out_in(get(l.up), s)
        gate = out_in(get(l.gate), s) if l.gate is not None else None
    if mode == "naive":
        return [(up, 1.0)]
    parts = [(up, 1.0)]
    if gate is not None:
        parts.append((gate, 1.0))
    parts.append((out_in(get(l.down), s).t(), 1.0))  # columns of down -> rows
    return parts


def weight(m: nn.Module) -> torch.Tensor:
    return m.weight.detach()
