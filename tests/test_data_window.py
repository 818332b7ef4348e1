"""`cascadeprune data window`: cut the window.json / window.f32 the serve examples send."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from cascadeprune.cli import main

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def run(capsys, *argv) -> tuple[int, str]:
    rc = main(["data", "window", *map(str, argv)])
    return rc, capsys.readouterr().err.strip()


def test_csv_to_json_and_f32(tmp_path, capsys):
    x = np.random.default_rng(0).standard_normal(3000).astype(np.float32)
    f = tmp_path / "rec.csv"
    f.write_text("time_s,accel_g\n" + "".join(f"{i / 12000},{v!r}\n" for i, v in enumerate(x.tolist())))
    rc, err = run(capsys, f, "--window", 512, "--offset", 100, "--fs", 12000, "--column", "accel_g", "--id",
                  "pump7-000123", "--out", tmp_path / "window.json")
    assert rc == 0 and "512 samples at 12000 Hz" in err, err
    body = json.loads((tmp_path / "window.json").read_text())
    assert body["id"] == "pump7-000123" and body["sample_rate"] == 12000.0
    np.testing.assert_array_equal(np.asarray(body["signal"], np.float32), x[100:612])
    rc, _ = run(capsys, f, "--window", 512, "--offset", 100, "--fs", 12000, "--column", "1", "--format", "f32",
                "--out", tmp_path / "window.f32")
    raw = (tmp_path / "window.f32").read_bytes()
    assert rc == 0 and len(raw) == 2048 and np.array_equal(np.frombuffer(raw, "<f4"), x[100:612])
    # one column, no header, at 48 kHz: resampled to 12 kHz (a quarter of the samples)
    g = tmp_path / "rec48k.txt"
    g.write_text("\n".join(repr(v) for v in np.sin(np.arange(8192) / 20).tolist()))
    rc, err = run(capsys, g, "--window", 1024, "--offset", 1024, "--fs", 48000, "--out", tmp_path / "w2.json")
    assert rc == 0 and len(json.loads((tmp_path / "w2.json").read_text())["signal"]) == 1024
    rc, err = run(capsys, g, "--window", 1024, "--offset", 1025, "--fs", 48000, "--out", tmp_path / "w3.json")
    assert rc == 2 and "runs past the end" in err and "2048 samples at 12000 Hz" in err


@pytest.mark.parametrize("argv, words", [
    (["{dir}/rec.csv", "--window", "512", "--out", "{dir}/o.json"], "pass --fs"),
    (["{dir}/rec.csv", "--window", "512", "--fs", "12000", "--offset", "-1", "--out", "{dir}/o.json"], "--offset"),
    (["{dir}/rec.csv", "--window", "512", "--fs", "0", "--out", "{dir}/o.json"], "--fs: must be > 0"),
    (["{dir}/rec.csv", "--window", "512", "--fs", "12000", "--out", "{dir}/o.json"], "name one with --column"),
    (["{dir}/rec.csv", "--window", "512", "--fs", "12000", "--column", "speed", "--out", "{dir}/o.json"],
     "no column 'speed'"),
    (["{dir}/bad.csv", "--window", "16", "--fs", "12000", "--out", "{dir}/o.json"], "line 3: 'oops' is not a number"),
    (["{dir}/rec.wav", "--window", "512", "--out", "{dir}/o.json"], "unsupported file type"),
    (["{dir}/missing.csv", "--window", "512", "--out", "{dir}/o.json"], "no such file"),
    (["{dir}/rec.csv", "--out", "{dir}/o.json"], "--model ARTIFACT"),
    (["{dir}/bad.csv", "--window", "1", "--fs", "12000", "--out", "{dir}/o.json"], "--window: must be >= 16"),
    (["{dir}/one.csv", "--window", "16", "--fs", "12000", "--out", "{dir}/exists.json"], "already exists"),
])
def test_bad_input_is_one_line(tmp_path, capsys, argv, words):
    (tmp_path / "rec.csv").write_text("a,b\n1,2\n3,4\n")
    (tmp_path / "bad.csv").write_text("1.0\n2.0\noops\n" + "4.0\n" * 17)
    (tmp_path / "one.csv").write_text("".join(f"{i}\n" for i in range(16)))
    (tmp_path / "rec.wav").write_bytes(b"RIFF")
    (tmp_path / "exists.json").write_text("{}")
    rc, err = run(capsys, *(a.replace("{dir}", str(tmp_path)) for a in argv))
    assert rc == 2 and err.startswith("cascadeprune: error:") and words in err and "\n" not in err, err
    assert (tmp_path / "exists.json").read_text() == "{}" and not (tmp_path / "o.json").exists()


def test_real_cwru_mat_equals_the_protocol_reader(tmp_path, capsys):
    """A 12 kHz CWRU file: the window is the reader's samples, unchanged."""
    if not (DATA / "cwru" / "MANIFEST.csv").is_file():
        msg = f"real CWRU data not found at {DATA}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    from cascadeprune.tasks.bearing.cwru import read_cwru

    rc, err = run(capsys, DATA / "cwru" / "105.mat", "--window", 2048, "--offset", 5000, "--out", tmp_path / "w.json")
    assert rc == 0, err
    want = read_cwru(DATA / "cwru" / "105.mat").signal[5000:7048].astype(np.float32)
    np.testing.assert_array_equal(np.asarray(json.loads((tmp_path / "w.json").read_text())["signal"], np.float32),
                                  want)
