"""From-scratch backbones: a controlled 2x2 of attention (MHA / GQA) by FFN (GELU / SwiGLU) at matched size.

All four have 6 layers, hidden size 384 and 6 query heads of 64; their FFN widths are chosen so that
transformer-block parameters agree within 3 % (the accounting counts blocks only):

==================  ==========  ======================  ============  =========================================
name                family      attention               FFN           block params
==================  ==========  ======================  ============  =========================================
``gpt2-10m``        GPT-2       MHA                     GELU 1536     10,646,784
``gqa-gelu-10m``    Starcoder2  GQA, 2 KV heads, D = 3  GELU 1760     10,497,600
``mha-swiglu-10m``  Llama       MHA (6 KV heads)        SwiGLU 1008   10,510,848
``llama-10m``       Llama       GQA, 2 KV heads, D = 3  SwiGLU 1152   10,326,528
==================  ==========  ======================  ============  =========================================

What else differs (no family in transformers has every cell with one block design): ``gpt2-10m``
has learned positions, the other three rotary ones (RoPE); the two GELU models have LayerNorm,
biases on every projection and dropout 0.1 on the residual stream and the embeddings (Starcoder2's
``residual_dropout`` / ``embedding_dropout``, GPT-2's ``resid_pdrop`` / ``embd_pdrop``), the two SwiGLU
models RMSNorm, no biases and no dropout. So the attention comparison (across a row: MHA vs GQA at
one FFN) differs otherwise only in positions for GELU and in nothing for SwiGLU, while the FFN
comparison (down a column) also changes norm, biases and dropout. The static SIA check holds only
for ``gpt2-10m``: D > 1 breaks it for heads, a gated FFN for channels.

``gpt2-deep`` is the GPT-2 style at the depth of the paper's GPT-2 (12 layers), narrower (hidden 256,
8 heads of 32, FFN 1024, 9.48 M block parameters), so whole-layer removal is finer-grained.

Example::

    backbone = scratch_backbone("gpt2-10m", max_positions=64)
"""

from __future__ import annotations

# the table lives with the other model sources (storage.sources); re-exported here for old imports
from cascadeprune.storage.sources import SCRATCH, scratch_backbone  # noqa: F401
