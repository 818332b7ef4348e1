"""Every flag does what it says or is refused: numeric flags at their edges, errors that name their real source,
--opset honoured or refused, a closed pipe, demo --overwrite, data describe --json, sia --units."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cascadeprune.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
HUGE_INT, HUGE = "1" + "0" * 30, "1e30"
EDGES = ("0", "-1", "inf", "nan", "huge")

# command line that reaches the flag (nothing is loaded: the parser refuses first), and the edges that are VALID
# for the flag (0 is a fine seed, 0 dB a fine SNR)
COMMANDS = {
    "inspect": ["inspect", "m"],
    "data fetch": ["data", "fetch", "cwru", "--to", "d"],
    "data describe": ["data", "describe", "synthetic"],
    "data window": ["data", "window", "f.mat", "--out", "w.json"],
    "train": ["train", "--task", "synthetic", "--backbone", "gpt2-tiny", "--out", "o"],
    "eval": ["eval", "m", "--task", "synthetic"],
    "compress": ["compress", "m", "--task", "lm", "--out", "o", "--ratio", "2"],
    "export": ["export", "c", "--out", "o"],
    "bench": ["bench", "a"],
    "serve": ["serve", "a"],
    "sia": ["sia", "m", "--task", "lm"],
}
VALID = {
    ("train", "--seed"): {"0"}, ("train", "--speed-jitter"): {"0"}, ("train", "--patience"): {"0"},
    ("train", "--warmup-steps"): {"0"}, ("eval", "--snr-db"): {"0", "-1"}, ("eval", "--noise-seed"): {"0"},
    ("compress", "--seed"): {"0"}, ("compress", "--recovery-steps"): {"0"}, ("bench", "--warmup"): {"0"},
    ("sia", "--pairs"): {"0"}, ("sia", "--random-sets"): {"0"}, ("sia", "--seed"): {"0"},
    ("data window", "--offset"): {"0"}, ("serve", "--ui-min-confidence"): {"0"}, ("serve", "--min-std"): {"0"},
    ("serve", "--rail-tolerance"): {"0"}, ("inspect", "--seed"): {"0"},
}


def numeric_flags() -> list[tuple[str, str, bool]]:
    """(command, flag, integer?) for every option whose parser type is a number, read from the parser itself."""
    out = []

    def walk(parser, prefix):
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sub in a.choices.items():
                    walk(sub, f"{prefix} {name}".strip())
            elif a.option_strings and a.type is not None and getattr(a.type, "__name__", "") in ("int", "float"):
                # a bare int/float type (no checked range) would let 0, -1 or 1e30 through: refused here
                assert hasattr(a.type, "checked_range"), f"{prefix} {a.option_strings[0]} has an unchecked type"
                out.append((prefix, max(a.option_strings, key=len), a.type.__name__ == "int"))

    walk(build_parser(), "")
    return out


def cli(argv):
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def test_every_numeric_flag_is_covered_and_typed():
    flags = numeric_flags()
    assert {c for c, _, _ in flags} == set(COMMANDS)
    assert len(flags) == 56  # every numeric option of every command (a new one joins the edge test by itself)


def edge_cases() -> list[tuple[str, str, bool, str]]:
    """Every numeric flag at every edge that is invalid for it (the valid ones, e.g. --seed 0, are left out)."""
    return [(c, f, i, e) for c, f, i in numeric_flags() for e in EDGES if e not in VALID.get((c, f), set())]


@pytest.mark.parametrize("command,flag,integer,edge", edge_cases(), ids=lambda x: str(x))
def test_a_numeric_flag_at_its_edge_exits_2_naming_the_flag(command, flag, integer, edge, capsys):
    value = (HUGE_INT if integer else HUGE) if edge == "huge" else edge
    if (command, flag) == ("eval", "--snr-db") and edge == "-1":
        value = "-1e30"
    rc = cli(COMMANDS[command] + [f"{flag}={value}"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and f"argument {flag}:" in err and "Traceback" not in err


@pytest.mark.parametrize("argv,expected", [
    (["--set", "seeed=3", "--ratio", "2"], r"^cascadeprune: error: --set seeed=3: seeed: unknown key$"),
    (["--ratio", "0.5"], r"^cascadeprune: error: argument --ratio: must be > 1, got 0.5"),
    ([], r"^cascadeprune: error: --ratio is required"),
    (["--recipe", "recipes/lm-cpu.yaml"], r"^cascadeprune: error: --ratio is required"),
    (["--ratio", "2", "--set", "stages.0.recovery.steps=-1"],
     r"^cascadeprune: error: --set stages.0.recovery.steps=-1: stages\[0\].recovery.steps: .*greater than or equal to 0"),
    (["--ratio", "2", "--set", "ratio=0.5"], r"^cascadeprune: error: --set ratio=0.5: ratio: must be > 1"),
    (["--ratio", "2", "--device", "tpu"], r"^cascadeprune: error: --device: "),
    (["--ratio", "2", "--calibration", "prose:x"], r"^cascadeprune: error: --calibration 'prose:x': .*not a number"),
])
def test_errors_name_their_real_source(argv, expected, capsys):
    assert cli(["compress", "tiny-llama", "--task", "lm", "--out", "unused"] + argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    import re

    assert re.search(expected, err.strip()), err


def test_a_bad_recipe_key_names_the_file_and_the_key(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("stages:\n  - {granularity: layers, recovery: {rnak: 4}}\n")
    assert cli(["compress", "tiny-llama", "--task", "lm", "--out", "unused", "--ratio", "2", "--recipe",
                str(recipe)]) == 2
    assert capsys.readouterr().err.strip() == f"cascadeprune: error: {recipe}: stages[0].recovery.rnak: unknown key"
    recipe.write_text("stages:\n  - {granularity: layers, criterion: nope}\n")
    assert cli(["compress", "tiny-llama", "--task", "lm", "--out", "unused", "--ratio", "2", "--recipe",
                str(recipe)]) == 2
    assert capsys.readouterr().err.startswith(f"cascadeprune: error: {recipe}: stages[0].criterion: no layers")


@pytest.mark.parametrize("opset", ["13", "17", "99"])
def test_an_opset_the_exporter_cannot_write_is_refused_before_any_work(opset, tmp_path, capsys):
    assert cli(["export", "no-such-classifier", "--out", str(tmp_path / "e"), "--opset", opset]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cascadeprune: error: --opset {opset}: ") and err.count("\n") == 1
    assert not (tmp_path / "e").exists()


def test_a_requested_opset_is_written():
    import onnx
    import torch

    from cascadeprune.deploy.export import export_onnx
    from cascadeprune.storage.load import load_backbone
    from cascadeprune.tasks.bearing.classifier import FrontEndConfig, VibrationClassifier

    torch.manual_seed(0)
    clf = VibrationClassifier(load_backbone("gpt2-tiny", seed=0), ("a", "b"), FrontEndConfig(512, 16))
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"cp-opset-{os.getpid()}.onnx"
    try:
        assert export_onnx(clf, path, 20) == 20
        m = onnx.load(str(path))
        assert [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] == [20]
    finally:
        path.unlink(missing_ok=True)


def _cli_process(*args, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), HF_HUB_OFFLINE="1")
    return subprocess.Popen([sys.executable, "-m", "cascadeprune", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kw)


def test_a_closed_pipe_ends_quietly():
    p = _cli_process("inspect", "tiny-llama", "--json")
    p.stdout.close()  # the reader is gone before the command writes anything: every write meets EPIPE
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 0
    assert "Traceback" not in err and "BrokenPipe" not in err and err == ""


def test_inspect_into_head_exits_cleanly():
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), HF_HUB_OFFLINE="1")
    r = subprocess.run(["bash", "-o", "pipefail", "-c",
                        f"'{sys.executable}' -m cascadeprune inspect tiny-llama --json | head -1"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout == "{\n" and r.stderr == ""


def test_demo_refuses_a_non_empty_out_without_overwrite(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert cli(["demo", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--overwrite" in err and str(tmp_path) in err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize("spec", ["synthetic", "lm:prose"])
def test_data_describe_json(spec, capsys):
    assert cli(["data", "describe", spec, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert ("segments" in info) if spec == "synthetic" else ("prose" in info["domains"])


def test_sia_windows_names_itself(capsys):
    assert cli(["sia", "tiny-llama", "--task", "lm@seq=16", "--windows", "6", "--batch-size", "4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cascadeprune: error: --windows 6: need at least 2 x --batch-size = 8") and \
        err.count("\n") == 1


def test_sia_units_says_how_many_were_measured_and_from_where(capsys):
    assert cli(["sia", "tiny-llama", "--task", "lm@seq=16", "--granularity", "heads", "--units", "8", "--pairs",
                "2", "--random-sets", "1", "--windows", "4", "--batch-size", "2", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    single = rep["granularities"]["heads"]["single"]
    assert single["sampled"] == 8  # --units 8: exactly 8 in the clustered sample
    assert 8 <= single["measured"] <= 8 + (1 + 1) * 8  # plus up to max(8, 8/4) from each removal set, as documented
    from cascadeprune.sia.measure import format_report

    text = format_report(rep)
    extra = single["measured"] - 8
    assert (f"(8 in the --units sample + {extra} from the removal sets)" in text) == (extra > 0)
