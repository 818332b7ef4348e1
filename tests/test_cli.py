"""The command line, end to end, in-process."""

from __future__ import annotations

import json
import os

import pytest
import torch

from cascadeprune import PruningPlan, load_model, save_model
from cascadeprune.cli import main
from cascadeprune.storage.sources import tiny_model
from conftest import forward, inputs


def test_inspect_json(capsys):
    assert main(["inspect", "tiny-mistral", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["attention"]["kind"] == "GQA" and info["attention"]["group_size"] == 2
    assert info["sia"]["holds"] is False and len(info["sia"]["reasons"]) == 2


def test_inspect_text(capsys):
    assert main(["inspect", "tiny-gpt2"]) == 0
    out = capsys.readouterr().out
    assert "MHA" in out and "SIA (static)  HOLDS" in out


def test_apply_writes_a_loadable_directory(tmp_path, capsys):
    src = save_model(tiny_model("llama"), tmp_path / "dense")
    plan = PruningPlan(layers={1}, heads={0: {4, 5, 6, 7}}, channels={2: set(range(20))})
    (tmp_path / "plan.json").write_text(plan.to_json())
    before = sorted((p.name, p.stat().st_mtime_ns) for p in src.iterdir())
    assert main(["apply", "--model", str(src), "--plan", str(tmp_path / "plan.json"),
                 "--out", str(tmp_path / "pruned"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["compression_ratio"] > 1 and summary["stock_loadable"] is False
    assert sorted((p.name, p.stat().st_mtime_ns) for p in src.iterdir()) == before  # input untouched
    dense = load_model(src)
    from cascadeprune import apply_plan

    batch = inputs(dense)
    assert torch.equal(forward(load_model(tmp_path / "pruned"), batch), forward(apply_plan(dense, plan), batch))
    assert PruningPlan.load(tmp_path / "pruned" / "plan.json") == plan


@pytest.mark.parametrize(
    "plan_text, match",
    [('{"format": "cascadeprune-plan/1", "remove": {"layers": [9]}}', r"\[index\] layer index 9"),
     ("{broken", "not valid JSON")],
)
def test_apply_errors_are_clear_and_write_nothing(tmp_path, capsys, plan_text, match):
    (tmp_path / "plan.json").write_text(plan_text)
    code = main(["apply", "--model", "tiny-gpt2", "--plan", str(tmp_path / "plan.json"), "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert "cascadeprune: error:" in err and __import__("re").search(match, err)
    assert not (tmp_path / "o").exists()


def test_apply_refuses_to_write_into_the_input(tmp_path, capsys):
    src = save_model(tiny_model("gpt2"), tmp_path / "dense")
    (tmp_path / "plan.json").write_text(PruningPlan(layers={1}).to_json())
    code = main(["apply", "--model", str(src), "--plan", str(tmp_path / "plan.json"), "--out", str(src),
                 "--overwrite"])
    assert code == 2 and "input model" in capsys.readouterr().err


def test_unknown_model_name(capsys):
    assert main(["inspect", "no-such-model"]) == 2
    assert "no-such-model" in capsys.readouterr().err


def test_demo_parts_run(tmp_path):
    """`make demo` runs these two parts with bigger budgets (checked by hand: see README)."""
    from cascadeprune.demo import compress_demo, demo_family

    row = demo_family("qwen2", tmp_path / "surgery")
    assert row["max_abs_diff_vs_masked"] <= 1e-5 and row["max_abs_diff_reload"] == 0.0
    result = compress_demo(tmp_path, ratio=8.0, train_steps=20, recovery_steps=(2, 2, 4))
    assert abs(result["report"]["ratio_achieved"] / 8.0 - 1) <= 0.01
    assert result["paths"]["markdown"].is_file() and (tmp_path / "compressed" / "model" / "classifier.json").is_file()


def test_python_dash_m_is_the_cli(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "cascadeprune", "inspect", "tiny-gpt2", "--json"],
                         capture_output=True, text=True, env=os.environ | {"HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["family"] == "gpt2"
