"""Switch units off without removing them: the reference that physical surgery must equal.

- a head is masked by zeroing its slice at the input of the attention output projection;
- a channel by zeroing its slice at the input of the FFN down projection;
- a layer by skipping the block (its output is replaced by its input).

Example::

    with mask_plan(model, plan):
        reference = model(input_ids).logits
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from cascadeprune.arch.resolve import resolve
from cascadeprune.plan import PruningPlan


def _zero_input_slices(positions: list[int], width: int):
    def hook(module, args):
        x = args[0]
        mask = torch.ones(x.shape[-1], dtype=x.dtype, device=x.device)
        for p in positions:
            mask[p * width : (p + 1) * width] = 0
        return (x * mask,) + tuple(args[1:])

    return hook


def _skip_block(module, args, kwargs, output):
    h_in = args[0] if args else kwargs["hidden_states"]
    if isinstance(output, torch.Tensor):
        return h_in
    return (h_in,) + tuple(output[1:])


@contextlib.contextmanager
def mask_plan(model: nn.Module, plan: PruningPlan):
    """Within the context, ``model`` computes as if ``plan`` were applied (ORIGINAL indices)."""
    s = resolve(model)
    handles = []
    try:
        for l in s.layers:
            if l.orig_index in plan.layers:
                handles.append(l.module.register_forward_hook(_skip_block, with_kwargs=True))
                continue
            heads = [p for p, h in enumerate(l.heads) if h in plan.heads.get(l.orig_index, ())]
            if heads:
                handles.append(l.o.register_forward_pre_hook(_zero_input_slices(heads, s.dims.head_dim)))
            chans = [p for p, c in enumerate(l.channels) if c in plan.channels.get(l.orig_index, ())]
            if chans:
                handles.append(l.down.register_forward_pre_hook(_zero_input_slices(chans, 1)))
        yield model
    finally:
        for h in handles:
            h.remove()
