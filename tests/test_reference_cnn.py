"""The reference CNN (`--backbone wdcnn`): trained by the same `train`, evaluated, exported and
benched by the same commands as the LLM classifiers, and refused by the pruning commands."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cascadeprune import load_model
from cascadeprune.cli import main
from cascadeprune.deploy.runtime import load_predictor
from cascadeprune.tasks.bearing.cnn import WDCNNClassifier

CLASSES = ("normal", "inner", "outer", "ball")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cnn")
    rc = main(["train", "--task", "synthetic", "--backbone", "wdcnn", "--window", "512", "--stride", "512",
               "--max-steps", "4", "--batch-size", "16", "--out", str(root / "cnn")])
    assert rc == 0
    return root


def test_train_writes_a_reloadable_reference(trained):
    d = trained / "cnn"
    meta = json.loads((d / "reference.json").read_text())
    assert meta["format"] == "cascadeprune-reference/1" and meta["classes"] == list(CLASSES)
    assert meta["arch"]["window"] == 512 and meta["train"]["steps"] == 4
    assert not (d / "plan.json").exists()  # nothing was pruned: no plan
    model = load_model(d)
    assert isinstance(model, WDCNNClassifier) and not model.training
    x = torch.randn(3, 512)
    again = load_model(d)
    assert torch.equal(model(x), again(x))


def test_parameters_and_flops_are_counted_from_the_layers():
    cnn = WDCNNClassifier(CLASSES, window=1024)
    assert cnn.block_params() == sum(p.numel() for p in cnn.parameters()) == 47_304
    f = cnn.flops_per_window()
    # first conv: 16 filters of 64 taps over (1024 + 48 - 64) / 16 + 1 = 64 positions
    first = 2 * 16 * 64 * 64
    assert f["blocks"] > first and f["total"] == f["blocks"] + f["head"]
    with pytest.raises(ValueError, match="too short"):
        WDCNNClassifier(CLASSES, window=256)


def test_export_matches_pytorch_and_bench_reports_it(trained, capsys):
    src, out = trained / "cnn", trained / "cnn.onnx"
    assert main(["export", str(src), "--out", str(out), "--int8"]) == 0
    info = json.loads((out / "deploy.json").read_text())
    assert info["window"] == 512 and info["classes"] == list(CLASSES)
    assert info["block_compression_ratio"] == 1.0 and info["block_params"] == load_model(src).block_params()
    assert info["parity"]["fp32"]["argmax_agreement"] == 1.0
    assert info["parity"]["fp32"]["max_abs_logit_diff"] <= 1e-4
    x = np.random.default_rng(0).standard_normal((5, 512)).astype(np.float32)
    torch_pred = load_predictor(src)
    assert torch_pred.logits(x).shape == (5, 4)
    capsys.readouterr()
    assert main(["bench", str(src), str(out), "--runs", "5", "--warmup", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["runtime"] for r in rows] == ["torch", "onnx"]
    assert all(r["p50_ms"] > 0 and r["flops_per_window"] > 0 for r in rows)


@pytest.mark.parametrize("argv", [
    ["compress", "{cnn}", "--task", "synthetic", "--ratio", "2", "--out", "{tmp}/c"],
    ["inspect", "{cnn}"],
])
def test_pruning_commands_refuse_a_reference_with_one_line(trained, argv, capsys):
    args = [a.format(cnn=trained / "cnn", tmp=trained) for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ("nothing to prune" in err[0] or "not a Hugging Face transformer" in err[0])


def test_lora_on_a_reference_is_refused(tmp_path, capsys):
    assert main(["train", "--task", "synthetic", "--backbone", "wdcnn", "--lora", "--out", str(tmp_path / "x")]) == 2
    assert "--lora" in capsys.readouterr().err


def _bench_reference():
    from benchmarks import reference

    return reference


def test_the_benchmark_adapts_from_the_same_seeds_checkpoint_with_a_fixed_budget():
    """benchmarks/reference.py: on the adaptation protocol the CNN and the LLM classifiers are trained with
    --init from their cwru-to-mfpt-2class checkpoint of the same seed; the commands parse into `train`."""
    from cascadeprune.cli import build_parser

    bench = _bench_reference()
    cmd, out = bench.cnn_command(bench.ADAPT, 123)
    a = vars(build_parser().parse_args(cmd))
    assert a["command"] == "train" and a["task"] == "cwru-to-mfpt-2class-5shot-adapt" and a["backbone"] is None
    assert a["init"].endswith("checkpoints/wdcnn_cwru-to-mfpt-2class_seed123") and a["seed"] == 123
    assert (a["max_steps"], a["batch_size"], a["keep"], a["warmup_steps"]) == (30, 10, "last", 3)
    assert out.name == "wdcnn_cwru-to-mfpt-2class-5shot-adapt_seed123"
    a = vars(build_parser().parse_args(bench.cnn_command("cwru-to-mfpt-2class", 42)[0]))
    assert a["backbone"] == "wdcnn" and a["init"] is None and a["keep"] == "best"  # the other protocols unchanged
    inits = {}
    for model in bench.ADAPT_LLMS:
        cmd, init, out = bench.llm_adapt_command(model, 42, "cuda")
        a = vars(build_parser().parse_args(cmd))
        assert a["init"] == str(init) and a["max_steps"] == 30 and a["keep"] == "last" and a["device"] == "cuda"
        assert a["lr"] == bench.RECIPES[model]["lr"] and out != init
        inits[model] = init.name
    assert inits == {"gpt2-deep": "gpt2-deep_cwru-to-mfpt-2class_seed42_raw_sj0.03",
                     "all-minilm-l6-v2": "all-minilm-l6-v2_cwru-to-mfpt-2class_seed42"}


def test_the_reference_table_shows_adapted_rows(tmp_path):
    bench = _bench_reference()
    p = "cwru-to-mfpt-2class-5shot-adapt"
    recs = [{"benchmark": "reference", "model": "wdcnn", "protocol": p, "seed": s, "test_snr_db": None,
             "accuracy": 0.6 + s / 1e4, "macro_f1": 0.5, "params": 47102, "init": "x", "init_accuracy": 0.12,
             "steps": 30} for s in (42, 123)]
    recs += [{"benchmark": "reference", "model": "fft-linear", "protocol": p, "seed": 42, "test_snr_db": None,
              "accuracy": 0.7, "macro_f1": 0.6, "params": 1028}]
    recs += [{"benchmark": "adapt", "model": "gpt2-deep", "front_end": "raw", "protocol": p, "seed": 42,
              "accuracy": 0.8, "macro_f1": 0.75, "init": "y", "init_accuracy": 0.5, "steps": 30}]
    f = tmp_path / "reference.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in recs))
    text = bench.table(f)
    assert "| wdcnn | reference, adapted 30 steps (before: 12.00 ± 0.00 %) |" in text
    assert "| fft-linear | reference | – | 70.00 |" in text
    assert "| gpt2-deep (raw) | LLM dense, adapted 30 steps (before: 50.00 %) | 1x | 80.00 |" in text
