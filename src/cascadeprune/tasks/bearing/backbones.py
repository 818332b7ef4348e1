"""From-scratch backbones: a controlled MHA+GELU vs GQA+SwiGLU pair at matched size.

``gpt2-10m`` and ``llama-10m`` both have 6 layers, hidden size 384, 6 query heads of 64 and about
10.6 / 10.3 M transformer-block parameters; they differ only in attention (MHA vs GQA with 2 KV
heads, D = 3) and FFN (GELU 1536 vs SwiGLU 1152). ``gpt2-deep`` is the same GPT-2 style at the
depth of the paper's GPT-2 (12 layers), narrower (hidden 256, 8 heads of 32, FFN 1024, 9.48 M block
parameters), so whole-layer removal is finer-grained. Names accept a size suffix from the table.

Example::

    backbone = scratch_backbone("gpt2-10m", max_positions=64)
"""

from __future__ import annotations

# the table lives with the other model sources (storage.sources); re-exported here for old imports
from cascadeprune.storage.sources import SCRATCH, scratch_backbone  # noqa: F401
