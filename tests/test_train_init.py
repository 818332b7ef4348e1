"""`cascadeprune train --init DIR`: start from a trained classifier (LLM classifier or the reference CNN)
instead of a fresh model, on the synthetic protocol; DIR is never modified and mismatches are refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from cascadeprune import load_model
from cascadeprune.cli import main

SMALL = ["--window", "512", "--stride", "2048"]  # few training windows: each step is cheap
LLM = ["--backbone", "gpt2-tiny", "--patch", "16", "--speed-jitter", "0"]


def _digest(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*"))
            if p.is_file()}


def _state(d: Path) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in load_model(d).state_dict().items()}


@pytest.fixture(scope="module")
def inits(tmp_path_factory):
    root = tmp_path_factory.mktemp("init")
    assert main(["train", "--task", "synthetic", *LLM, *SMALL, "--max-steps", "2", "--out", str(root / "llm")]) == 0
    assert main(["train", "--task", "synthetic", "--backbone", "wdcnn", *SMALL, "--max-steps", "2",
                 "--out", str(root / "cnn")]) == 0
    return root


def test_init_starts_from_the_weights_and_trains_further(inits, tmp_path, capsys):
    src = inits / "llm"
    before = _digest(src)
    capsys.readouterr()
    # learning rate 1e-30 (--lr must be > 0): one step from the init moves no weight by more than ~1e-30, so
    # training starts from its weights
    assert main(["train", "--task", "synthetic", "--init", str(src), "--stride", "2048", "--max-steps", "1",
                 "--lr", "1e-30", "--speed-jitter", "0", "--out", str(tmp_path / "same"), "--json"]) == 0
    same = json.loads(capsys.readouterr().out)
    init_state, same_state = _state(src), _state(tmp_path / "same")
    assert init_state.keys() == same_state.keys()
    assert all(torch.allclose(init_state[k], same_state[k], rtol=0, atol=1e-20) for k in init_state)
    # the init's accuracy on the task, measured before training, is the init's own
    assert main(["eval", str(src), "--task", "synthetic", "--json"]) == 0
    assert same["init"]["test_accuracy"] == json.loads(capsys.readouterr().out)["accuracy"] == same["test"]["accuracy"]

    assert main(["train", "--task", "synthetic", "--init", str(src), "--stride", "2048", "--max-steps", "3",
                 "--keep", "last", "--out", str(tmp_path / "more"), "--json"]) == 0
    more = json.loads(capsys.readouterr().out)
    assert more["steps"] == 3
    state = _state(tmp_path / "more")
    assert any(not torch.equal(init_state[k], state[k]) for k in init_state)
    meta = json.loads((tmp_path / "more" / "classifier.json").read_text())
    assert meta["init"]["dir"] == str(src.resolve()) and meta["init"]["protocol"] == "synthetic"
    assert meta["backbone"] == "gpt2-tiny" and meta["frontend"]["patch"] == 16 and meta["frontend"]["window"] == 512
    assert meta["train"]["keep"] == "last" and meta["train"]["steps"] == 3
    assert _digest(src) == before  # never modified


def test_init_with_lora_and_a_matching_backbone(inits, tmp_path):
    assert main(["train", "--task", "synthetic", "--init", str(inits / "llm"), "--backbone", "gpt2-tiny", "--lora",
                 "--stride", "2048", "--max-steps", "2", "--out", str(tmp_path / "lora")]) == 0
    meta = json.loads((tmp_path / "lora" / "classifier.json").read_text())
    assert meta["train"]["lora"] is True and "init" in meta


def test_wdcnn_init_trains(inits, tmp_path):
    src = inits / "cnn"
    before = _digest(src)
    assert main(["train", "--task", "synthetic", "--init", str(src), "--stride", "2048", "--max-steps", "3",
                 "--batch-size", "10", "--keep", "last", "--out", str(tmp_path / "cnn")]) == 0
    meta = json.loads((tmp_path / "cnn" / "reference.json").read_text())
    assert meta["init"]["dir"] == str(src.resolve()) and meta["train"]["steps"] == 3 and meta["arch"]["window"] == 512
    a, b = _state(src), _state(tmp_path / "cnn")
    assert any(not torch.equal(a[k], b[k]) for k in a)
    assert _digest(src) == before


@pytest.mark.parametrize("extra, message", [
    (["--window", "1024"], "takes windows of 512 samples; --window 1024 differs"),
    (["--patch", "32"], "has front end patch=16; --patch 32 differs"),
    (["--features", "raw"], "has front end features=spectrum; --features raw differs"),
    (["--backbone", "gpt2-10m"], "--backbone gpt2-10m disagrees with --init"),
])
def test_init_mismatches_are_refused_in_one_line(inits, tmp_path, capsys, extra, message):
    assert main(["train", "--task", "synthetic", "--init", str(inits / "llm"), *extra, "--max-steps", "1",
                 "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "x").exists()


def test_init_refusals(inits, tmp_path, capsys):
    def refused(argv, message):
        assert main(["train", *argv, "--max-steps", "1"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err

    out = ["--out", str(tmp_path / "x")]
    refused(["--task", "synthetic", "--init", str(tmp_path / "missing"), *out], "no such directory")
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    refused(["--task", "synthetic", "--init", str(tmp_path / "hf"), *out], "not a classifier directory")
    refused(["--task", "synthetic", *out], "give --backbone")
    refused(["--task", "synthetic", "--init", str(inits / "cnn"), "--patch", "16", *out], "does not apply")
    refused(["--task", "synthetic", "--init", str(inits / "cnn"), "--lora", *out], "--lora")
    refused(["--task", "synthetic", "--init", str(inits / "llm"), "--out", str(inits / "llm"), "--overwrite"],
            "would write into the input model")


def test_mismatched_classes_are_refused(inits, tmp_path, capsys):
    """A classifier of other classes (here: the synthetic CNN relabelled) is refused with both lists named."""
    src = tmp_path / "relabelled"
    cnn = load_model(inits / "cnn")
    cnn.classes = ("a", "b", "c", "d")
    cnn.save_pretrained(src)
    assert main(["train", "--task", "synthetic", "--init", str(src), "--max-steps", "1",
                 "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "predicts classes ['a', 'b', 'c', 'd'] but synthetic has ['normal'" in err[0]
