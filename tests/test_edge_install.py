"""The torch-free edge install: ``pip install 'cascadeprune[serve]'`` in a fresh virtual environment (no torch,
no transformers) serves and benches an exported ONNX classifier.

The wheel is built from the source tree and installed with its ``[serve]`` extra by pip from the machine's
package index (the same resolution a user's edge box does); the ONNX artifact is exported here, with torch.
``-m wheel`` selects it with the other install test."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
import venv
from pathlib import Path

import numpy as np
import pytest

from cascadeprune.serve.ports import free_port, wait_port
from serve_support import WINDOW, tiny_export

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.wheel
HEAVY = ("torch", "transformers")


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def _run(cmd, timeout=600, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=timeout, **kw)


@pytest.fixture(scope="module")
def edge_env(tmp_path_factory) -> Path:
    """A fresh venv holding only the wheel and its [serve] extra; returns its bin/ folder."""
    tmp = tmp_path_factory.mktemp("edge")
    src = tmp / "src-copy"
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / f, src / f)
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                  str(tmp / "dist"), str(src)])
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp / "dist").glob("cascadeprune-*.whl"))
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    inst = _run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", f"{wheel}[serve]"])
    assert inst.returncode == 0, inst.stderr[-3000:]
    return env_dir / "bin"


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    return tiny_export(tmp_path_factory.mktemp("edge-artifact"))[1]


def test_the_serve_extra_installs_no_torch_and_imports_the_service(edge_env):
    missing = _run([str(edge_env / "python"), "-c", "import importlib.util as u, json; "
                    f"print(json.dumps([u.find_spec(m) is None for m in {HEAVY!r}]))"], cwd=edge_env)
    assert json.loads(missing.stdout) == [True, True], missing.stdout + missing.stderr
    code = ("import sys, cascadeprune.serve, cascadeprune.serve.service, cascadeprune.serve.http, "
            "cascadeprune.serve.mqtt, cascadeprune.deploy.runtime, cascadeprune.deploy.bench, cascadeprune.cli; "
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    out = _run([str(edge_env / "python"), "-c", code], cwd=edge_env)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr[-2000:]
    helped = _run([str(edge_env / "cascadeprune"), "--help"], cwd=edge_env)
    assert helped.returncode == 0 and "serve" in helped.stdout, helped.stderr[-2000:]


def test_cascadeprune_serve_answers_over_http_without_torch(edge_env, export):
    port = free_port()
    # the real command, through cli.main, reporting afterwards which heavy modules the process imported
    code = ("import sys; from cascadeprune.cli import main; rc = main(sys.argv[1:]); "
            f"print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules], flush=True); sys.exit(rc)")
    proc = subprocess.Popen([str(edge_env / "python"), "-c", code, "serve", str(export), "--http",
                             f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(), cwd=edge_env)
    try:
        wait_port(port, timeout=60)
        x = np.random.default_rng(0).standard_normal(WINDOW).astype(np.float32)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/predict", data=json.dumps(
            {"signal": x.tolist()}).encode(), headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            body = json.loads(r.read())
        classes = json.loads((export / "deploy.json").read_text())["classes"]
        assert r.status == 200 and body["predictions"][0]["label"] in classes, body
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert "HEAVY []" in out, out + err[-2000:]


def test_cascadeprune_bench_of_an_onnx_export_runs_without_torch(edge_env, export):
    out = _run([str(edge_env / "cascadeprune"), "bench", str(export), "--runs", "20", "--warmup", "2", "--json"],
               cwd=edge_env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    recs = json.loads(out.stdout)
    assert len(recs) == 1 and recs[0]["runtime"] == "onnx" and recs[0]["p50_ms"] > 0, recs
