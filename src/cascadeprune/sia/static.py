"""The paper's static SIA check, read off the architecture alone.

Per-component criteria (score each head / channel on its own, remove the lowest) assume a unit's
contribution does not depend on which other units stay. Two structures break that:

1. **Shared KV projections** (GQA/MQA, group size D = n_q / n_kv > 1): the query heads of a group
   read the same keys and values, so removing one changes what its siblings' scores meant, and
   a KV head can only go when all its query heads go.
2. **Gated FFN** (SwiGLU / GeGLU): each channel is a product of a gate and an up projection, so a
   channel's effect is multiplicative; norms of single projections misjudge it.

SIA holds when D = 1 and the FFN is not gated (e.g. GPT-2, BERT: MHA + GELU). When it is
violated, score structurally valid groups jointly (whole KV groups or an equal number of query
heads per group; gate, up and down slices together) and prune in smaller steps with re-scoring.

Example::

    v = static_check(resolve(model))
    v.holds, v.reasons
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from cascadeprune.arch.resolve import Structure


@dataclass(frozen=True)
class SIAVerdict:
    holds: bool
    group_size: int
    gated_ffn: bool
    reasons: tuple[str, ...]  # one sentence per violated condition
    advice: str

    def to_dict(self) -> dict:
        return asdict(self)


def static_check(s: Structure) -> SIAVerdict:
    D, gated = s.dims.group_size, s.family.gated
    reasons = []
    if D > 1:
        reasons.append(
            f"heads share KV projections (D = n_q / n_kv = {s.dims.num_heads}/{s.dims.num_kv_heads} = {D} > 1): "
            "query heads in a group are not independent units and a KV head goes only with its whole group"
        )
    if gated:
        reasons.append(
            "the FFN is gated (gate x up): a channel's effect is a product of two projections, so "
            "single-projection criteria misjudge it"
        )
    if reasons:
        advice = (
            "SIA violated: per-component criteria are unreliable here. Score structurally valid groups "
            "jointly (KV groups or equal query heads per group; gate+up+down per channel), prune in small "
            "iterative steps with re-scoring, and expect to need recovery (the paper saw ChatGLM2 fall "
            "from 88.75% to 19.75% under a per-component L1 criterion at ~2x)."
        )
    else:
        advice = "SIA holds (MHA, ungated FFN): per-component criteria are expected to be reliable."
    return SIAVerdict(not reasons, D, gated, tuple(reasons), advice)
