"""benchmarks/torch_pruning_peer.py without Torch-Pruning: an outside tool's cut (weights sliced by hand, config
untouched, as Torch-Pruning leaves it) is adopted into the engine's record so LoRA recovery can run, and the check
against the engine's own surgery catches a cut that is not the one claimed; the peer's recovery budget is the
cascade's; the paired statistics are scipy's on synthetic records. Tiny random BERT, no downloads."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from cascadeprune.accounting import block_params
from cascadeprune.arch.resolve import resolve
from cascadeprune.errors import CascadePruneError
from cascadeprune.plan import PruningPlan
from cascadeprune.recovery import LoRAConfig, add_lora, merge_lora
from cascadeprune.storage.sources import tiny_model
from cascadeprune.surgery.apply import apply_plan
from cascadeprune.tasks.bearing.classifier import FrontEndConfig, VibrationClassifier

from benchmarks import torch_pruning_peer as peer


def classifier() -> VibrationClassifier:
    torch.manual_seed(0)
    return VibrationClassifier(tiny_model("bert"), ("a", "b", "c"), FrontEndConfig(window=64, patch=8)).eval()


def _slice(lin: nn.Linear, out_keep=None, in_keep=None) -> None:
    """What a pruning tool does to a Linear: new weight (and bias) tensors, nothing else."""
    with torch.no_grad():
        w = lin.weight
        if out_keep is not None:
            w = w[out_keep]
            lin.bias = nn.Parameter(lin.bias[out_keep].clone())
            lin.out_features = len(out_keep)
        if in_keep is not None:
            w = w[:, in_keep]
            lin.in_features = len(in_keep)
        lin.weight = nn.Parameter(w.clone())


def outside_cut(clf, heads: dict[int, list[int]], channels: dict[int, list[int]]):
    """Remove ``heads`` / ``channels`` (per layer) by hand, leaving the config as it was (as Torch-Pruning does)."""
    m = copy.deepcopy(clf)
    s = resolve(m)
    hd, n, ffn = s.dims.head_dim, s.dims.num_heads, s.dims.intermediate_size
    for l in s.layers:
        kept_h = [h for h in range(n) if h not in heads.get(l.orig_index, [])]
        rows = [h * hd + j for h in kept_h for j in range(hd)]
        for p in (l.q, l.k, l.v):
            _slice(p, out_keep=rows)
        _slice(l.o, in_keep=rows)
        l.attention.num_attention_heads, l.attention.all_head_size = len(kept_h), len(rows)
        kept_c = [c for c in range(ffn) if c not in channels.get(l.orig_index, [])]
        _slice(l.up, out_keep=kept_c)
        _slice(l.down, in_keep=kept_c)
    return m


HEADS = {0: [1], 2: [0, 3]}
CHANNELS = {1: list(range(0, 40, 3)), 3: [5, 6, 7]}


def test_outside_cut_adopted_matches_engine_and_takes_lora():
    dense = classifier()
    cut = outside_cut(dense, HEADS, CHANNELS)
    with pytest.raises(CascadePruneError):  # before adoption the table cannot resolve the new shapes
        resolve(cut)
    assert peer.adopt(cut, dense, {"heads": HEADS, "channels": CHANNELS})
    s = resolve(cut)
    assert [len(l.heads) for l in s.layers] == [3, 4, 2, 4]
    assert s.layers[1].channels == tuple(c for c in range(96) if c not in CHANNELS[1])
    ref = apply_plan(dense, PruningPlan(frozenset(), HEADS, CHANNELS))
    assert block_params(cut) == block_params(ref) == peer._blocks(cut)
    x = torch.randn(2, 64)
    torch.testing.assert_close(cut(x), ref(x))
    add_lora(cut, LoRAConfig(rank=2, alpha=4))  # the engine's recovery can wrap the cut projections
    assert sum(p.numel() for n, p in cut.named_parameters() if "lora_" in n) > 0
    merge_lora(cut)
    torch.testing.assert_close(cut(x), ref(x))  # fresh adapters (B = 0) change nothing
    assert peer._units_left(cut, dense) == (13, 4 * 96 - len(CHANNELS[1]) - len(CHANNELS[3]))


def test_adopt_reports_a_cut_that_is_not_the_one_named():
    dense = classifier()
    cut = outside_cut(dense, {0: [2]}, {})  # removed head 2 of layer 0 ...
    assert not peer.adopt(cut, dense, {"heads": {0: [1]}, "channels": {}})  # ... but head 1 is named: same shapes


def test_equal_budget_is_the_cascades_summed_recovery():
    from benchmarks.cascade import variant_config

    for scale in (0.5, 1.0):
        cfg = variant_config("cascade", 2.5, 42, speed_jitter=0.0, recovery_scale=scale)
        got = peer.equal_budget(2.5, 42, scale, 0.0)
        assert got.steps == sum(st.recovery.steps for st in cfg.stages) == {0.5: 150, 1.0: 300}[scale]
        last = cfg.stages[-1].recovery
        assert (got.method, got.lr, got.batch_size, got.rank, got.alpha) == (last.method, last.lr, last.batch_size,
                                                                             last.rank, last.alpha)


def rec(method, ratio, seed, acc, status="ok"):
    return {"model": "m", "method": method, "ratio_target": ratio, "seed": seed, "recovery_scale": 0.5,
            "test_accuracy": acc, "status": status, "recovery_steps": 150, "recovery_method": "lora",
            "dense_test_accuracy": 0.99, "ratio_achieved": ratio}


def test_stats_pair_over_seeds_and_table_counts_failures():
    from scipy.stats import ttest_rel

    ours_acc, tp_acc = [0.90, 0.85, 0.95], [0.80, 0.84, 0.90]
    recs = [rec("cascade", 2.5, s, a) for s, a in zip((42, 123, 456), ours_acc)]
    recs += [rec("torch-pruning-l1-heads+ffn+budget", 2.5, s, a) for s, a in zip((42, 123, 456), tp_acc)]
    recs += [rec("torch-pruning-l1-heads+ffn+budget", 13.8, 42, None, status="unreachable"),
             rec("cascade", 2.5, 42, 0.10) | {"recovery_method": None, "status": "failed"}]  # superseded below
    recs += [rec("cascade", 2.5, 42, 0.90)]  # the latest record of a run wins
    row = [line for line in peer.stats(recs).splitlines() if "2.5×" in line][0]
    t = ttest_rel(ours_acc, tp_acc)
    assert f"{100 * (sum(ours_acc) - sum(tp_acc)) / 3:+.2f}" in row and f"{t.pvalue:.3g}" in row
    table = peer.table(recs)
    assert "unreachable (1)" in table and "90.00 ± 5.00 (n=3)" in table
