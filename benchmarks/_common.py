"""What every benchmark driver shares: where things live, the data windows, how a driver runs the CLI (or a fresh
process of itself), reading and appending records, the numbers every table prints (mean ± sd, paired seeds, Holm,
Markdown rows), and ONE provenance rule.

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
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
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


def fft_probe(protocol: str, seed: int):
    """The ``fft-linear`` reference fitted on a protocol's training windows: (probe, dataset, seconds to fit)."""
    from cascadeprune.tasks.bearing.protocols import build_dataset
    from cascadeprune.tasks.bearing.reference import FFTLinear

    ds = build_dataset(protocol, DATA, windows())
    t0 = time.perf_counter()
    probe = FFTLinear(seed=seed).fit(ds.x["train"], ds.y["train"], len(ds.classes))
    return probe, ds, time.perf_counter() - t0


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


def utc_now() -> str:
    """A record's ``date``: now, UTC, to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def provenance(module: str, argv: list[str], device: str = "cpu", command_key: str = "command") -> dict:
    """The fields every record carries (the one rule), for ``python -m benchmarks.<module> <argv>``.

    ``command_key``: where the driver's command goes when a record's own ``command`` is the CLI command it
    ran (``benchmark_command``)."""
    commit, dirty = commit_and_dirty()
    return {"date": utc_now(),
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
                         what: str, device: str = "cpu", command_key: str = "command") -> list[dict]:
    """Append the JSON record(s) a ``--one`` child printed last, with provenance; [] if it failed."""
    if child.returncode != 0:
        print(f"FAILED {what}:\n{child.stderr[-3000:]}", file=sys.stderr, flush=True)
        return []
    out = json.loads(child.stdout.strip().splitlines()[-1])
    prov = provenance(module, argv, device, command_key)
    return append_records(results, [r | prov for r in (out if isinstance(out, list) else [out])])


def child_command(module: str, *args: str) -> list[str]:
    """``python -m benchmarks.<module> args...``: how a driver starts a fresh process of itself."""
    return [sys.executable, "-m", f"benchmarks.{module}", *args]


def run_child(module: str, *args: str) -> subprocess.CompletedProcess:
    """A fresh ``python -m benchmarks.<module> args...`` from the repository root, its output captured."""
    return subprocess.run(child_command(module, *args), capture_output=True, text=True, cwd=ROOT)


# -- running the CLI -----------------------------------------------------------------------------------------

def cli_env() -> dict:
    """The environment a driver runs ``cascadeprune`` in: offline, no progress bars."""
    return dict(os.environ, HF_HUB_OFFLINE="1", TQDM_DISABLE="1")


def run_cli(cmd: list[str]) -> subprocess.CompletedProcess:
    """``cascadeprune ...`` (``cmd`` as recorded, starting with "cascadeprune") in a fresh process from the
    repository root, its output captured."""
    return subprocess.run([sys.executable, "-m", "cascadeprune.cli", *cmd[1:]], cwd=ROOT, capture_output=True,
                          text=True, env=cli_env())


def cli_in_process(cmd: list[str]) -> int:
    """``cascadeprune ... --json`` (``cmd`` as recorded) in this process, from the repository root (the paths
    in a recorded command are relative to it); its exit code."""
    from cascadeprune.cli import main

    cwd = os.getcwd()
    try:
        os.chdir(ROOT)
        return main(cmd[1:] + ["--json"])
    finally:
        os.chdir(cwd)


def compress_command(model, task: str, ratio: float, seed: int, out, method: str | None = None,
                     options: list[str] = (), sets: list[str] = ()) -> list[str]:
    """``cascadeprune compress`` as the drivers record it: model, task, ratio, seed, [method], out, the other
    ``options``, then one ``--set`` per override."""
    cmd = ["cascadeprune", "compress", str(model), "--task", task, "--ratio", f"{ratio:g}", "--seed", str(seed)]
    cmd += (["--method", method] if method else []) + ["--out", str(out), *options]
    for item in sets:
        cmd += ["--set", item]
    return cmd


def load_records(path: Path, benchmark: str | None = None) -> list[dict]:
    """Every record of a JSON-lines file, oldest first ([] when the file does not exist); ``benchmark``: only
    the records of that kind (several drivers append to sia.jsonl and cascade.jsonl)."""
    path = Path(path)
    recs = [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []
    return recs if benchmark is None else [r for r in recs if r.get("benchmark") == benchmark]


def newest(recs: list[dict], key) -> dict:
    """``key(record)`` -> the newest record of that key (later lines are newer): a rerun of a setting and seed
    replaces the earlier record, it is not another seed. Keys keep the order they first appear in."""
    return {key(r): r for r in recs}


_EXISTS: dict[str, bool] = {}


def commit_exists(commit: str) -> bool:
    """Whether ``commit`` names a commit of this repository."""
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


# -- the numbers in the tables ----------------------------------------------------------------------------------

def mean_sd(xs, scale: float = 1.0, digits: int = 2, sign: bool = False, float_sum: bool = False) -> str:
    """'mean ± sd' of ``xs`` times ``scale`` (just the mean for a single value; ``sign``: the mean's always).
    ``float_sum``: the mean as ``scale * sum(xs) / n`` in floating point, as the frontier and Torch-Pruning tables
    always computed it (``statistics.mean`` is exact and can round the other way at the last printed digit)."""
    xs = list(xs)
    sd = f" ± {scale * statistics.stdev(xs):.{digits}f}" if len(xs) > 1 else ""
    mean = scale * sum(xs) / len(xs) if float_sum else scale * statistics.mean(xs)
    return f"{mean:{'+' if sign else ''}.{digits}f}{sd}"


def geo_mean_sd(xs) -> tuple[float, float | None]:
    """Geometric mean and geometric sd (None for one value) of positive ``xs`` (ratios spanning magnitudes)."""
    logs = [math.log(x) for x in xs]
    return math.exp(statistics.mean(logs)), math.exp(statistics.stdev(logs)) if len(logs) > 1 else None


def paired(x: dict, y: dict) -> tuple[list, list, list]:
    """(seeds, x's values, y's values) over the seeds both ``x`` and ``y`` (seed -> value) have, in seed order."""
    seeds = sorted(set(x) & set(y))
    return seeds, [x[s] for s in seeds], [y[s] for s in seeds]


def paired_cell(d: list[float]) -> str:
    """Mean ± sd of paired differences and on how many seeds the first is ahead ('–' with none)."""
    return f"{mean_sd(d, sign=True)} ({sum(x > 0 for x in d)} of {len(d)} seeds)" if d else "–"


def t_stat(d: list[float]) -> str:
    """Paired t of the differences (mean over its standard error); '–' with fewer than two or no spread."""
    if len(d) < 2 or statistics.stdev(d) == 0:
        return "–"
    return f"{statistics.mean(d) / (statistics.stdev(d) / math.sqrt(len(d))):+.1f}"


def holm(ps: list[float]) -> list[float]:
    """Holm's step-down adjustment of one family of p-values (NaN stays NaN and is not counted)."""
    idx = sorted((i for i, p in enumerate(ps) if not math.isnan(p)), key=lambda i: ps[i])
    out, run = list(ps), 0.0
    for rank, i in enumerate(idx):
        run = max(run, min(1.0, (len(idx) - rank) * ps[i]))
        out[i] = run
    return out


def md_row(cells) -> str:
    """One Markdown table row."""
    return "| " + " | ".join(map(str, cells)) + " |"


def md_head(cols) -> list[str]:
    """A Markdown table's head: the column names and the rule under them."""
    return [md_row(cols), "|" + "---|" * len(cols)]
