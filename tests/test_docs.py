"""The documentation: the MkDocs site builds with --strict (a broken link or a page left out of the nav fails),
the README stays short, and no p-value is quoted by hand."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_mkdocs_build_strict(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert 'id="cascadeprune.methods.cascade.compress"' in api  # the API page is generated from docstrings


def test_every_page_is_in_the_nav():
    def pages(nav):
        for item in nav:
            v = next(iter(item.values())) if isinstance(item, dict) else item
            yield from (pages(v) if isinstance(v, list) else [v])

    listed = set(pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]))
    on_disk = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert on_disk == listed


def test_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300


def test_no_hand_quoted_p_values():
    """'p ≈' is what a person types; the generator prints p-values from scipy."""
    for f in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]:
        assert not re.search(r"\bp\s*≈", f.read_text()), f
