"""Layer criteria from the similarity of a layer's input and output: angular distance and 1 - linear CKA.
An identity layer scores 0 on both, a layer that scrambles its tokens scores high, CKA ignores rotations and
isotropic scaling, the token sample is deterministic and shared by every layer, and auto's criterion probe picks
both up. Tiny random Llama; seconds."""

from __future__ import annotations

import copy

import pytest
import torch

from cascadeprune.arch import resolve
from cascadeprune.calib import CKA_TOKENS, LayerChange, TokenSampler, collect, linear_cka
from cascadeprune.importance import names, score
from cascadeprune.methods.auto import search
from cascadeprune.methods.config import CalibrationConfig, RecoveryConfig
from cascadeprune.storage.sources import tiny_model
from cascadeprune.tasks import get_task


def _batches(n=3, seq=64):
    g = torch.Generator().manual_seed(0)
    return [torch.randint(2, 128, (4, seq), generator=g) for _ in range(n)]


def _identity_layer(model, i):
    """Layer ``i`` made the identity: attention and FFN outputs zero, so h_out = h_in (the residual)."""
    l = resolve(model).layers[i]
    with torch.no_grad():
        for m in (l.o, l.down):
            m.weight.zero_()
            if getattr(m, "bias", None) is not None:
                m.bias.zero_()
    return model


def test_both_criteria_are_registered_for_layers():
    assert {"angular", "cka"} <= set(names("layers"))


def test_an_identity_layer_scores_zero_on_both():
    m = _identity_layer(tiny_model("llama"), 1)
    stats = collect(m, _batches())
    ang = score("layers", "angular", stats, protect_ends=False)
    cka = score("layers", "cka", stats, protect_ends=False)
    assert ang[1] == pytest.approx(0.0, abs=1e-6) and cka[1] == pytest.approx(0.0, abs=1e-6)
    assert ang[2] > 1e-3 and cka[2] > 1e-4  # an ordinary random layer changes its input
    # low = redundant = removed first: the identity layer ranks first on both
    assert min(ang, key=ang.get) == 1 and min(cka, key=cka.get) == 1
    assert score("layers", "cka", stats)[0] == float("inf")  # the ends are protected by default, as for lcr


def test_a_layer_that_scrambles_its_tokens_scores_high():
    m = _identity_layer(tiny_model("llama"), 1)
    layer = resolve(m).layers[1].module
    g = torch.Generator().manual_seed(1)

    def scramble(module, args, kwargs, output):  # each token's output is another token's input
        h = args[0] if args else kwargs["hidden_states"]
        flat = h.reshape(-1, h.shape[-1])
        out = flat[torch.randperm(flat.shape[0], generator=g)].reshape(h.shape)
        return out if isinstance(output, torch.Tensor) else (out, *output[1:])

    handle = layer.register_forward_hook(scramble, with_kwargs=True)  # runs before collect's own hook
    try:
        stats = collect(m, _batches())
    finally:
        handle.remove()
    ang = score("layers", "angular", stats, protect_ends=False)
    cka = score("layers", "cka", stats, protect_ends=False)
    assert cka[1] > 0.8 and cka[1] == max(cka.values())
    assert ang[1] > 0.1 and ang[1] == max(ang.values())


def test_cka_is_invariant_to_orthogonal_transforms_and_isotropic_scaling():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 16, generator=g, dtype=torch.float64)
    y = x @ torch.randn(16, 16, generator=g, dtype=torch.float64) + 0.5 * torch.randn(300, 16, generator=g,
                                                                                          dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g, dtype=torch.float64))
    base = linear_cka(x, y)
    assert 0.05 < base < 0.999
    assert linear_cka(x @ q, y) == pytest.approx(base, abs=1e-10)
    assert linear_cka(x, 3.7 * y) == pytest.approx(base, abs=1e-10)
    assert linear_cka(2.0 * x @ q, 0.1 * y @ q.T) == pytest.approx(base, abs=1e-10)
    assert linear_cka(x, 5.0 * x @ q) == pytest.approx(1.0, abs=1e-10)
    assert linear_cka(x, x + 1.0) == pytest.approx(1.0, abs=1e-10)  # centred: a shift changes nothing
    # not invariant to a general linear map (CKA is not CCA): an anisotropic scaling changes it
    assert linear_cka(x, x * torch.linspace(0.1, 10, 16, dtype=torch.float64)) < 0.99


def test_a_few_massive_norm_tokens_do_not_decide_the_cka_criterion():
    """Pretrained LMs carry a few tokens (attention sinks) with norms far above the rest; plain CKA then sees only
    them. The criterion scales every token to unit norm first."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 16, generator=g, dtype=torch.float64)
    y = torch.randn(256, 16, generator=g, dtype=torch.float64)  # unrelated to x: a layer that rewrites everything
    sink = torch.zeros(16, dtype=torch.float64)
    sink[3] = 1000.0
    x[0], y[0] = sink, sink  # one huge token, passed through unchanged
    c = LayerChange(sample_in=x.float(), sample_out=y.float(), filled=256)
    assert c.cka_distance_raw < 0.05  # plain CKA: "the layer changes nothing", from one token of 256
    assert c.cka_distance > 0.8  # per-token unit norm: the other 255 tokens count


def test_the_token_sample_is_deterministic_bounded_and_shared_by_every_layer():
    m = _identity_layer(tiny_model("llama"), 1)
    a, b = collect(m, _batches(n=4)), collect(m, _batches(n=4))  # 4 x 4 x 64 = 1024 tokens > CKA_TOKENS
    la, lb = a.layers, b.layers
    assert la[2].filled == CKA_TOKENS and la[2].sample_in.shape[0] == CKA_TOKENS
    assert torch.equal(la[2].sample_in, lb[2].sample_in)  # same data, same sample
    # the same tokens in every layer: layer 1 is the identity, so layer 2's sampled inputs are its sampled outputs
    assert torch.allclose(la[2].sample_in, la[1].sample_out) and torch.allclose(la[1].sample_in, la[1].sample_out)
    # reservoir: tokens from late batches get in too (a uniform sample of the stream, not its first 512 tokens)
    s = TokenSampler(4, seed=0)
    picked = set()
    for batch in range(50):
        slots, rows = s.decide(batch, 4)
        picked |= {batch for _ in rows}
    assert max(picked) > 10
    assert collect(m, _batches(), cka_tokens=0).layers[2].sample_in is None
    with pytest.raises(ValueError, match="cka"):
        LayerChange().cka_distance


@pytest.fixture(scope="module")
def task():
    return get_task("lm@seq=32,eval=4,val=2", tiny_model("llama"), source="tiny-llama")


def test_auto_probes_angular_and_cka_for_layers(task):
    res = search(copy.deepcopy(tiny_model("llama")), task, 1.6, budget="60", recovery=RecoveryConfig(method="none"),
                 calibration=CalibrationConfig(n=8, batch_size=4), sia="skip")
    probed = {c["criterion"] for c in res.log["candidates"] if c["phase"] == "criterion"
              and c["granularity"] == "layers"}
    assert {"angular", "cka", "lcr", "block_influence"} <= probed
    assert not res.log["skipped_criteria"]


def test_a_small_probe_budget_is_split_between_granularities_and_says_what_it_left_out(task):
    res = search(copy.deepcopy(tiny_model("llama")), task, 1.6, budget="10", recovery=RecoveryConfig(method="none"),
                 calibration=CalibrationConfig(n=8, batch_size=4), sia="skip")
    rows = [c for c in res.log["candidates"] if c["phase"] == "criterion"]
    grans = res.log["chosen"]["granularities"]
    # every granularity with a choice got at least one probe: layers could not eat the whole probe budget
    assert all(any(c["granularity"] == g for c in rows) for g in grans)
    left_out = res.log["not_scored_criteria"]
    assert left_out and all(c not in {r["criterion"] for r in rows if r["granularity"] == g}
                            for g, cs in left_out.items() for c in cs)
    whys = {d["decision"]: d["why"] for d in res.log["decisions"]}
    assert any("not scored (budget)" in whys[f"criterion:{g}"] for g in left_out)
