"""`cascadeprune inspect MODEL --layers`: per-layer angular distance, CKA distance, Block Influence and LCR on the
task's calibration windows, as a table, JSON and a plot, for a causal LM and a bearing classifier; the measures are
the layer criteria's own; options without --layers are refused. Tiny random models; seconds."""

from __future__ import annotations

import json

import pytest
import torch

from cascadeprune import save_model
from cascadeprune.arch import resolve
from cascadeprune.calib import collect
from cascadeprune.cli import main
from cascadeprune.importance import score
from cascadeprune.storage.load import load_backbone
from cascadeprune.storage.sources import tiny_model
from cascadeprune.tasks import get_task
from cascadeprune.tasks.bearing.classifier import FrontEndConfig, VibrationClassifier

SPEC = "lm@seq=32,eval=4,val=2"
SMALL = ["--windows", "8", "--batch-size", "4"]


@pytest.fixture(scope="module")
def llama_with_identity_layer(tmp_path_factory):
    m = tiny_model("llama")
    l = resolve(m).layers[2]
    with torch.no_grad():
        l.o.weight.zero_()
        l.down.weight.zero_()
    path = tmp_path_factory.mktemp("lm") / "llama"
    save_model(m, path)
    return path, m


def test_lm_json_has_every_layer_and_matches_the_layer_criteria(llama_with_identity_layer, capsys):
    path, m = llama_with_identity_layer
    assert main(["inspect", str(path), "--layers", "--task", SPEC, "--json", *SMALL]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["format"] == "cascadeprune-layers/1" and rep["task"] == SPEC
    rows = rep["layers"]
    assert [r["layer"] for r in rows] == [0, 1, 2, 3]
    for r in rows:
        assert -1e-9 <= r["angular"] <= 1 and -1e-9 <= r["cka"] <= 1 and -1e-9 <= r["block_influence"] <= 2
        assert r["lcr"] >= 0
    # the identity layer: zero on every measure, first in every removal order
    assert rows[2]["angular"] == pytest.approx(0, abs=1e-6) and rows[2]["cka"] == pytest.approx(0, abs=1e-6)
    assert rows[2]["lcr"] == pytest.approx(0, abs=1e-9)
    assert rows[2]["cka_raw"] == pytest.approx(0, abs=1e-6) and all(0 <= r["cka_raw"] <= 1 + 1e-9 for r in rows)
    assert all(order[0] == 2 for order in rep["removal_order"].values())
    assert rep["data"]["windows"] == 8 and rep["data"]["tokens"] == 8 * 32
    # the same numbers the registered criteria score (same calibration windows)
    task = get_task(SPEC, m, source="tiny-llama")
    stats = collect(m, task.calibration_batches(None, 8, 4, 42), loss_fn=task.loss)
    for key in ("angular", "cka", "block_influence", "lcr"):
        got = score("layers", key, stats, protect_ends=False)
        assert [r[key] for r in rows] == pytest.approx([got[i] for i in range(4)], rel=1e-6, abs=1e-9)


def test_lm_table_prints_one_row_per_layer(llama_with_identity_layer, capsys):
    path, _ = llama_with_identity_layer
    assert main(["inspect", str(path), "--layers", "--task", SPEC, *SMALL]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert len(rows) == 4 and "CKA dist" in out and "removed first by cka: 2" in out


def test_classifier_uses_its_own_protocol_and_draws_a_plot(tmp_path, capsys):
    torch.manual_seed(0)
    clf = VibrationClassifier(load_backbone("tiny-gpt2"), ("normal", "inner", "outer", "ball"),
                              FrontEndConfig(512, 16), meta={"protocol": "synthetic"})
    save_model(clf, tmp_path / "clf")
    png = tmp_path / "layers.png"
    assert main(["inspect", str(tmp_path / "clf"), "--layers", "--json", "--plot", str(png), *SMALL]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["task"] == "synthetic" and len(rep["layers"]) == len(resolve(clf).layers)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and rep["plot"] == str(png)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("tmp")]  # written atomically, nothing left over


@pytest.mark.parametrize("args,flag", [(["--task", SPEC], "--task"), (["--windows", "4"], "--windows"),
                                       (["--plot", "x.png"], "--plot"), (["--data-dir", "d"], "--data-dir")])
def test_layer_options_without_layers_are_refused(args, flag, capsys):
    assert main(["inspect", "tiny-llama", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and flag in err and "--layers" in err


def test_a_plot_in_a_missing_folder_is_refused_before_any_work(tmp_path, capsys):
    assert main(["inspect", "tiny-llama", "--layers", "--task", SPEC, "--plot", str(tmp_path / "no" / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--plot" in err
