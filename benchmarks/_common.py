"""What every benchmark driver shares: where things live, the data windows, and ONE provenance rule.

Drivers run from the repository root as modules (``python -m benchmarks.cascade ...``) and import this
module as ``benchmarks._common``; they call the library or the CLI, never each other's internals through
``sys.path``.

The provenance rule (one place, every record): ``date`` (UTC), ``command`` (how to rerun it), ``commit``
(``git rev-parse --short HEAD``: a commit that must exist in the repository), ``dirty`` (tracked or untracked
changes under src/, recipes/ or benchmarks/ other than the records themselves: such a record is not a
result), ``machine``, ``device``, ``load_avg_1m`` (how busy the machine was). :func:`record_status` is the
reader's side of the rule, used by the results pages to flag records (never to drop them).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS_DIR = HERE / "results"
CHECKPOINTS = HERE / "checkpoints"
DATA = os.environ.get("CASCADEPRUNE_DATA", str(ROOT.parent / "shared" / "data"))

# One recipe per backbone: what a user would run with `cascadeprune train`.
RECIPES = {
    "gpt2-10m": dict(lora=False, lr=5e-4, steps=400),
    "gpt2-deep": dict(lora=False, lr=5e-4, steps=400),  # gpt2-10m's recipe at the paper's depth (12 layers)
    "gpt2-mini": dict(lora=False, lr=1e-3, steps=400),  # 1.2 M block params: the capacity-bound setting
    "llama-10m": dict(lora=False, lr=5e-4, steps=400),
    "all-minilm-l6-v2": dict(lora=False, lr=2e-4, steps=400),
    "smollm2-135m": dict(lora=True, lr=1e-3, steps=200),  # the paper's recovery recipe: LoRA r4/a16 on attention
}
FRONT_END = dict(window=1024, patch=32, features="spectrum", global_token=True)
# Named front ends. "spectrum" (the product's default) makes cross-load CWRU nearly linearly separable,
# so pruning the transformer barely matters; "raw" (time-domain patches, no global spectrum token) is
# closer to the paper's GPT-2 ("trained on vibration patches") and leaves the work to the transformer.
FRONT_ENDS = {"spectrum": FRONT_END, "raw": FRONT_END | dict(features="raw", global_token=False)}

# what counts as code for the dirty flag: everything that can change a number, not the records themselves
_CODE = ["src", "recipes", "benchmarks", ":(exclude)benchmarks/results", ":(exclude)benchmarks/checkpoints",
         ":(exclude)benchmarks/runs", ":(exclude)benchmarks/exports"]


def windows():
    """The benchmarks' windowing: every front end uses the same windows, half-overlapping."""
    from cascadeprune.tasks.bearing.protocols import WindowConfig

    return WindowConfig(window=FRONT_END["window"], stride=FRONT_END["window"] // 2)


def checkpoint_name(model: str, protocol: str, seed: int, speed_jitter: float = 0.0,
                    front_end: str = "spectrum") -> str:
    """benchmarks/checkpoints/<this>: one dense classifier per (model, protocol, seed, jitter, front end)."""
    fe = "" if front_end == "spectrum" else f"_{front_end}"
    return f"{model}_{protocol}_seed{seed}{fe}" + (f"_sj{speed_jitter:g}" if speed_jitter else "")


def set_threads() -> None:
    """All cores, or OMP_NUM_THREADS when set (several benchmark processes sharing one machine)."""
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1))


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)


def commit_and_dirty() -> tuple[str, bool | None]:
    """(short commit, dirty). Without a git checkout (a copied tree on a lent GPU machine) the commit comes
    from CASCADEPRUNE_COMMIT and dirtiness is unknown (None); with neither there is no provenance: refuse."""
    try:
        head = _git("rev-parse", "--short", "HEAD")
    except OSError:
        head = None
    if head is not None and head.returncode == 0 and head.stdout.strip():
        dirty = _git("status", "--porcelain", "--", *_CODE).stdout.strip()
        return head.stdout.strip(), bool(dirty)
    env = os.environ.get("CASCADEPRUNE_COMMIT", "").strip()
    if not env:
        raise SystemExit("benchmarks: no git commit to record (not a git checkout and CASCADEPRUNE_COMMIT unset)")
    return env, None


def device_name(device: str = "cpu") -> str:
    """The device the numbers come from, in words (never imports torch for a CPU run)."""
    if not device.startswith("cuda"):
        return "cpu"
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"{device} (unavailable)"


def provenance(module: str, argv: list[str], device: str = "cpu", command_key: str = "command") -> dict:
    """The fields every record carries (the one rule), for ``python -m benchmarks.<module> <argv>``.

    ``command_key``: where the driver's command goes when a record's own ``command`` is the CLI command it
    ran (``benchmark_command``)."""
    commit, dirty = commit_and_dirty()
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            command_key: f"python -m benchmarks.{module} " + shlex.join(argv),
            "commit": commit, "dirty": dirty,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
                       f"threads {os.environ.get('OMP_NUM_THREADS') or os.cpu_count()}",
            "device": device_name(device),
            "load_avg_1m": round(os.getloadavg()[0], 2)}


def append_records(path: Path, recs: list[dict]) -> list[dict]:
    """Append ``recs`` as JSON lines (one write per call, so a crash leaves no half line of ours)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write("".join(json.dumps(r) + "\n" for r in recs))
    return recs


def append_child_records(child: subprocess.CompletedProcess, module: str, argv: list[str], results: Path,
                         what: str, device: str = "cpu") -> list[dict]:
    """Append the JSON record(s) a ``--one`` child printed last, with provenance; [] if it failed."""
    if child.returncode != 0:
        print(f"FAILED {what}:\n{child.stderr[-3000:]}", file=sys.stderr)
        return []
    out = json.loads(child.stdout.strip().splitlines()[-1])
    prov = provenance(module, argv, device)
    return append_records(results, [r | prov for r in (out if isinstance(out, list) else [out])])


def child_command(module: str, *args: str) -> list[str]:
    """``python -m benchmarks.<module> args...``: how a driver starts a fresh process of itself."""
    return [sys.executable, "-m", f"benchmarks.{module}", *args]


def load_records(path: Path) -> list[dict]:
    """Every record of a JSON-lines file ([] when the file does not exist)."""
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []


_EXISTS: dict[str, bool] = {}


def commit_exists(commit: str) -> bool:
    if commit not in _EXISTS:
        _EXISTS[commit] = bool(commit) and _git("cat-file", "-e", f"{commit}^{{commit}}").returncode == 0
    return _EXISTS[commit]


def record_status(rec: dict) -> str:
    """'ok', 'dirty' (from an uncommitted tree), 'missing commit' (not in this repository) or 'no commit'.

    Older records wrote the dirty flag as a ``+dirty`` suffix on the commit; both spellings are read."""
    raw = str(rec.get("commit") or "")
    commit = raw.removesuffix("+dirty")
    if not commit:
        return "no commit"
    if not commit_exists(commit):
        return "missing commit"
    if raw.endswith("+dirty") or rec.get("dirty") is True:
        return "dirty"
    return "ok"
