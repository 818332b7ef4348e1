"""The one direction of imports: the engine knows tasks only through cascadeprune.task.Task.

Every import statement (top level or inside a function) of the engine's modules is read from the
source; none may name ``cascadeprune.tasks``, nor may a string in them (a dynamic import)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "cascadeprune"
ENGINE = ["methods", "recovery", "calib", "importance", "storage", "surgery", "arch", "plan.py", "accounting.py",
          "task.py", "devices.py", "report"]


def engine_files() -> list[Path]:
    out = []
    for part in ENGINE:
        p = SRC / part
        out += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    return out


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "cascadeprune.tasks" in node.value \
                and not isinstance(getattr(node, "parent", None), ast.Expr):
            found.append((node.lineno, node.value))
    return found


def _docstrings(path: Path) -> set[int]:
    """Line numbers of docstrings (they may mention the tasks package in prose and examples)."""
    tree = ast.parse(path.read_text())
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                lines.add(first.value.lineno)
    return lines


def test_the_engine_files_exist():
    files = engine_files()
    assert len(files) > 30 and all(f.is_file() for f in files)


@pytest.mark.parametrize("path", engine_files(), ids=lambda p: str(p.relative_to(SRC)))
def test_no_engine_module_imports_a_task(path):
    docs = _docstrings(path)
    bad = [(line, mod) for line, mod in imported_modules(path)
           if mod.startswith("cascadeprune.tasks") or (mod.startswith("cascadeprune") and ".tasks" in mod)
           if line not in docs]
    assert not bad, f"{path.relative_to(SRC)} imports a task: {bad}"


def test_the_checker_would_catch_an_import_inside_a_function(tmp_path):
    f = tmp_path / "m.py"
    f.write_text('"""doc mentions cascadeprune.tasks"""\ndef g():\n    from cascadeprune.tasks.bearing.train import x\n'
                 '    importlib.import_module("cascadeprune.tasks.lm")\n')
    mods = [m for line, m in imported_modules(f) if line not in _docstrings(f)]
    assert mods == ["cascadeprune.tasks.bearing.train", "cascadeprune.tasks.lm"]
