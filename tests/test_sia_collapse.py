"""benchmarks/sia_collapse.py builds real `cascadeprune compress` commands: every listed command parses with the
CLI's parser into a valid configuration with the intended stages, one of them runs as a --dry-run on a tiny
model, and the heads' share of the cut is each backbone's attention share. No compression is run."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from cascadeprune.accounting import block_params
from cascadeprune.arch.resolve import resolve
from cascadeprune.cli import build_parser, main
from cascadeprune.methods.config import build_config
from cascadeprune.storage.load import load_backbone
from cascadeprune.storage.sources import ModelSourceError

ROOT = Path(__file__).resolve().parents[1]
from benchmarks import sia_collapse as bench


def config_of(cmd: list[str]):
    a = vars(build_parser().parse_args(cmd[1:]))
    assert a["command"] == "compress"
    return build_config(a["recipe"], a["sets"], ratio=a["ratio"], method=a["method"], seed=a["seed"],
                        recovery_steps=a["recovery_steps"], device=a["device"], calibration=a["calibration"])


def test_every_listed_command_parses_into_the_intended_configuration(monkeypatch):
    monkeypatch.chdir(ROOT)  # the LM runs name recipes/lm-cpu.yaml relative to the repository
    runs = bench.grid()
    assert len({bench.name(r) for r in runs}) == len(runs)  # one output folder per run
    for r in runs:
        cfg = config_of(shlex.split(shlex.join(bench.command(r))))
        auto = r["remedy"] == "auto"  # auto's stages carry only the recovery budget; its search picks the rest
        assert cfg.ratio == bench.RATIO and cfg.seed == r["seed"] and cfg.method == ("auto" if auto else "cascade")
        grans = [s.granularity for s in cfg.stages]
        assert grans == {"channels-first": ["channels", "heads"], "channels-only": ["channels"]}.get(
            r["remedy"], ["heads", "channels"])
        assert auto or all(s.criterion == r["criterion"] and s.mode == r["mode"] for s in cfg.stages)
        assert not (auto and r["recovery"] == "none")  # auto always recovers
        method = "none" if r["recovery"] == "none" else ("distill" if r["remedy"] == "distill" else "lora")
        steps = sum(s.recovery.steps or 0 for s in cfg.stages if s.recovery.method == method)
        b = bench.BUDGET[bench.kind(r["model"])]
        assert steps == (0 if r["recovery"] == "none" else b["heads"] + b["channels"])  # one budget per model
        assert all(s.recovery.method == method for s in cfg.stages)
        if r["remedy"] == "uniform":
            assert cfg.stages[-1].allocation == "uniform"
        if len(cfg.stages) == 2 and not auto:
            heads = next(s for s in cfg.stages if s.granularity == "heads")
            assert heads.share == pytest.approx(bench.HEAD_SHARE[r["model"]], abs=1e-3)
    assert {(r["criterion"], r["mode"]) for r in runs} == {("l1", "naive"), ("l1", "grouped"), ("taylor", "naive"),
                                                         ("taylor", "grouped"), ("wanda_sp", "grouped"),
                                                         ("auto", "auto")}


def test_a_listed_schedule_dry_runs_to_2x_on_a_tiny_model(capsys):
    r = {"model": "llama-10m", "criterion": "l1", "mode": "naive", "remedy": "iterative", "recovery": "lora",
         "seed": 42}
    sets = bench.command(r)[-2:]
    assert main(["compress", "tiny-llama", "--task", "lm@seq=16", "--ratio", "2", "--out", "unused", "--dry-run",
                 "--json", *sets]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [x["granularity"] for x in rows] == ["heads", "channels"] and rows[-1]["ratio_after"] == pytest.approx(2.0)
    assert all(x["steps"] == 4 and x["mode"] == "naive" for x in rows)


@pytest.mark.parametrize("model", bench.CLASSIFIERS)
def test_the_heads_share_is_the_attention_share_of_the_blocks(model):
    try:
        backbone = load_backbone(bench.backbone(model))
    except ModelSourceError as e:  # the pretrained MiniLM comes from a PyPI package
        pytest.skip(str(e))
    layer = resolve(backbone).layers[0].module
    named = [(n, p.numel()) for n, p in layer.named_parameters() if "norm" not in n.lower()]
    attn = sum(k for n, k in named if n.startswith(("attn.", "self_attn.", "attention.")))
    ffn = sum(k for n, k in named if n.startswith(("mlp.", "intermediate.", "output.")))
    assert attn + ffn < block_params(backbone) / 6  # norms are neither
    assert bench.HEAD_SHARE[model] == pytest.approx(attn / (attn + ffn), abs=5e-4)


def fake_report(metric: str, dense: float, final: float, pruned: float, steps: int) -> dict:
    stage = {"granularity": "channels", "block_params": 50, "ratio": 2.0, f"{metric}_pruned": pruned,
             f"{metric}_recovered": final, f"val_{metric}_pruned": pruned, f"val_{metric}_recovered": final,
             "recovery_steps": steps, "wall_s": 1.0}
    rep = {"metric": metric, metric: final, "ratio_achieved": 2.0, "block_params": 50,
           "dense": {"block_params": 100, metric: dense}, "stages": [stage]}
    if metric == "perplexity":
        rep["test"] = {"perplexity_per_domain": {"prose": final}}
        rep["dense"]["test"] = {"perplexity_per_domain": {"prose": dense}}
    return rep


def test_records_have_the_issue_fields_and_the_table_reads_them():
    recs = []
    for seed, (acc, ppl) in zip((42, 123), ((0.5, 300.0), (0.7, 3000.0))):
        for recovery, steps in (("none", 0), ("lora", 180)):
            r = {"model": "llama-10m", "criterion": "l1", "mode": "naive", "remedy": "none", "recovery": recovery,
                 "seed": seed}
            rep = fake_report("accuracy", 0.95, acc + (0.2 if steps else 0), acc, steps)
            recs.append(bench.record(r, rep, bench.command(r), 1.0, 1.0, "cpu"))
            lm = dict(r, model="smollm2-135m")
            recs.append(bench.record(lm, fake_report("perplexity", 30.0, ppl / (10 if steps else 1), ppl, steps),
                                     bench.command(lm), 1.0, 1.0, "cpu"))
    c = recs[0]
    assert {"benchmark", "model", "granularity", "static_verdict", "criterion", "mode", "remedy", "ratio_target",
            "ratio_achieved", "seed", "recovery_steps", "accuracy", "dense_accuracy", "drop_pp", "command"} <= set(c)
    assert c["benchmark"] == "sia-collapse" and c["drop_pp"] == pytest.approx(45.0)
    assert c["granularity"] == "heads+channels" and c["static_verdict"].startswith("violated")
    assert recs[1]["ppl_ratio"] == pytest.approx(10.0) and "perplexity_mean" in recs[1]
    text = bench.table(recs)
    assert "| llama-10m (violated (D = 3, gated FFN)) | l1 | naive | none | heads+channels | 2.00x | 35.00 ± 14.14 |" \
        in text
    assert "| 15.00 ± 14.14 | 180 | 42, 123 |" in text  # after recovery: 20 pp better, both seeds
    assert "31.6x ×/÷ 5.1" in text  # perplexity ratios 10 and 100: geometric mean 31.6
