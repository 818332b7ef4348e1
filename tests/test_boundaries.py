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


# -- the directions between layers (DESIGN.md: one direction of imports) -------------------------------

CORE = ["arch", "plan.py", "surgery", "importance", "calib", "methods", "recovery"]
# what each part may not import (a prefix of cascadeprune.X); every import statement counts, in functions too
FORBIDDEN = {
    "core": (CORE, ["tasks", "deploy", "serve", "cli", "demo", "wiring", "sia", "inspection"]),
    "arch": (["arch"], ["surgery", "plan", "storage", "calib", "importance", "methods", "recovery"]),  # the bottom
    "storage": (["storage"], ["tasks", "deploy", "serve", "cli", "demo", "methods", "recovery"]),
    "tasks": (["tasks"], ["cli", "demo", "deploy", "serve", "wiring", "methods.cascade"]),
    "deploy": (["deploy"], ["serve", "cli", "demo", "methods", "recovery", "sia"]),
    # the service runs beside an ONNX artifact without torch: only its own modules, deploy and errors
    "serve": (["serve"], ["tasks", "methods", "recovery", "calib", "importance", "surgery", "arch", "storage",
                          "plan", "sia", "cli", "demo", "accounting", "inspection", "report"]),
}


def files_of(parts: list[str]) -> list[Path]:
    out = []
    for part in parts:
        p = SRC / part
        out += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    return out


def _cases():
    for name, (parts, banned) in FORBIDDEN.items():
        for f in files_of(parts):
            yield pytest.param(f, banned, id=f"{name}:{f.relative_to(SRC)}")


@pytest.mark.parametrize("path,banned", list(_cases()))
def test_layer_imports_flow_one_way(path, banned):
    docs = _docstrings(path)
    bad = [(line, mod) for line, mod in imported_modules(path) if line not in docs
           if any(mod == f"cascadeprune.{b}" or mod.startswith(f"cascadeprune.{b}.") for b in banned)]
    assert not bad, f"{path.relative_to(SRC)} imports {bad}: against the one direction of imports"


def test_the_layer_checker_catches_a_reverse_import(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def g():\n    from cascadeprune.deploy.memory import rss_mb\n    import cascadeprune.serve.http\n")
    mods = [m for _, m in imported_modules(f)]
    banned = FORBIDDEN["core"][1]
    assert [m for m in mods if any(m.startswith(f"cascadeprune.{b}") for b in banned)] == mods


REGISTER_CALLS = {"register_verifier", "register_format", "register_task"}


def test_registries_are_filled_in_one_place_not_by_import_side_effects():
    """Only cascadeprune/wiring.py calls the registries' register functions at import (module level or in
    the function it runs); no other module registers itself or another when imported."""
    offenders = []
    for f in sorted(SRC.rglob("*.py")):
        if f.name == "wiring.py":
            continue
        tree = ast.parse(f.read_text())
        for node in tree.body:  # module-level statements run on import
            for call in ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) else ():
                if isinstance(call, ast.Call):
                    fn = call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", "")
                    if fn in REGISTER_CALLS:
                        offenders.append(f"{f.relative_to(SRC)}:{call.lineno} {fn}")
    assert not offenders, offenders
    wiring = (SRC / "wiring.py").read_text()
    assert all(name in wiring for name in REGISTER_CALLS)


def test_the_wired_registries_are_complete():
    from cascadeprune.arch import recognise
    from cascadeprune.storage.formats import FORMATS
    from cascadeprune.task import TASKS

    assert set(TASKS) == {"lm", "bearing"} and len(FORMATS) == 2 and recognise._verifier is not None


def test_the_torch_free_commands_import_no_torch():
    """--help, and every module `serve` / `bench` of an ONNX artifact loads, in a fresh process of this venv
    (tests/test_edge_install.py does it in a venv that has no torch at all)."""
    import subprocess
    import sys

    code = ("import sys, cascadeprune, cascadeprune.cli as cli, cascadeprune.serve.service, cascadeprune.serve.http, "
            "cascadeprune.serve.mqtt, cascadeprune.serve.metrics, cascadeprune.deploy.runtime, "
            "cascadeprune.deploy.bench, cascadeprune.deploy.bench_worker, cascadeprune.methods.config, "
            "cascadeprune.wiring; cli.build_parser().format_help(); "
            "print([m for m in ('torch', 'transformers', 'peft', 'scipy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr[-2000:]
