"""The wheel carries its data files: build it, install it non-editable in a fresh virtual environment and
run the CLI there (outside the source tree, without PYTHONPATH).

The fresh environment borrows this environment's installed dependencies (torch, transformers, ...)
through a .pth line rather than reinstalling them, and never sees the editable install of the
source tree: a .pth file in a borrowed folder is not executed. ``-m wheel`` selects it alone."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.wheel


def _run(cmd, **kw):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")} | {"HF_HUB_OFFLINE": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, **kw)


def test_the_installed_wheel_describes_data_from_its_own_files(tmp_path):
    src = tmp_path / "src-copy"  # build from a copy: the build writes build/ and egg-info next to the sources
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / f, src / f)
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                  str(tmp_path / "dist"), str(src)])
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("cascadeprune-*.whl"))
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    purelib = _run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    Path(purelib, "borrowed.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    inst = _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q",
                 str(wheel)])
    assert inst.returncode == 0, inst.stderr[-2000:]
    where = _run([str(py), "-c", "import cascadeprune; print(cascadeprune.__file__)"], cwd=tmp_path)
    assert where.stdout.strip().startswith(purelib), where.stdout + where.stderr  # the wheel, not the source tree
    cli = env_dir / "bin" / "cascadeprune"
    out = _run([str(cli), "data", "describe", "synthetic"], cwd=tmp_path)
    assert out.returncode == 0 and "train" in out.stdout, out.stderr[-2000:]
    lm = _run([str(cli), "data", "describe", "lm"], cwd=tmp_path)
    assert lm.returncode == 0 and "code" in lm.stdout and "PSF-2.0" in lm.stdout, lm.stderr[-2000:]
    listing = _run([sys.executable, "-m", "zipfile", "-l", str(wheel)]).stdout
    assert "cascadeprune/tasks/bearing/cwru_files.csv" in listing and "tasks/lm/corpus/MANIFEST.json" in listing
    # the operator page's files (cascadeprune serve's GET /): without them the page would 500
    assert all(f"cascadeprune/serve/static/{f}" in listing for f in ("index.html", "app.js", "app.css")), listing
