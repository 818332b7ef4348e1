"""Stored `sia` reports: written beside a model, never into it, and read back by ``inspect``.

``cascadeprune sia MODEL --out DIR`` writes ``DIR/sia.json`` (the ``--json`` content), ``sia.md`` and
``sia.png`` into a hidden sibling folder and renames it into place, so a half-written report never
exists. ``DIR`` may not be the model's directory or one above it (an ``--overwrite`` would replace the
model); a folder inside it (``MODEL/sia``) is allowed and is where ``inspect MODEL`` looks by itself.

A report carries the model's **fingerprint** (family, per-layer shapes, block parameters and a digest
of the first values of every weight tensor): ``inspect MODEL --sia DIR`` refuses a report measured on
another model, also one of the same architecture with other weights.

Example::

    save_report(rep, "runs/llama-cwru/sia", model_source="runs/llama-cwru", text=format_report(rep))
    rep, path = load_for(model, "runs/llama-cwru/sia")       # CascadePruneError if it is another model's
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from pathlib import Path

from torch import nn

from cascadeprune.accounting import block_params
from cascadeprune.arch.resolve import resolve
from cascadeprune.errors import CascadePruneError, OutputExistsError
from cascadeprune.report.sia_report import FILES, write_files

_DIGEST_VALUES = 4096  # per tensor: enough to tell two trainings apart, cheap on a 135M model


def fingerprint(model: nn.Module) -> dict:
    """What identifies ``model`` for a stored report: structure plus a digest of its weights."""
    import torch

    s = resolve(model)
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        h.update(name.encode())
        h.update(p.detach().reshape(-1)[:_DIGEST_VALUES].to(torch.float32).cpu().numpy().tobytes())
    return {"family": s.family.name, "block_params": block_params(model),
            "layers": [[x["layer"], x["heads"], x["kv_heads"], x["channels"]] for x in s.per_layer_shapes()],
            "weights_sha256": h.hexdigest()[:16]}


def _refuse_model_dir(model_source: str | None, out: Path) -> None:
    if not model_source or not Path(model_source).exists():
        return  # a built-in name: nothing on disk to protect
    src, dst = Path(model_source).resolve(), out.resolve()
    home = src.parent if src.is_file() else src
    if dst == home or dst in home.parents:
        raise CascadePruneError(f"--out {out} is the model's directory or above it; write the report beside the "
                                f"model or into a folder of its own (e.g. --out {Path(model_source) / 'sia'})")


def check_out(out: str | Path, model_source: str | None = None, overwrite: bool = False) -> None:
    """Refuse ``out`` before any measuring: the model's own directory (or above), or a non-empty one."""
    out = Path(out)
    _refuse_model_dir(model_source, out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise OutputExistsError(f"{out} already exists and is not empty; choose another --out or pass --overwrite")


def save_report(rep: dict, out: str | Path, model_source: str | None = None, overwrite: bool = False,
                text: str | None = None) -> dict[str, Path]:
    """Write the report's files into ``out`` atomically; returns their paths."""
    out = Path(out)
    check_out(out, model_source, overwrite)
    from cascadeprune.storage.save import swap_into_place

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        write_files(rep, tmp, text)
        swap_into_place(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return {k: out / v for k, v in FILES.items()}


def candidates(model_source: str) -> list[Path]:
    """Where ``inspect MODEL`` looks without ``--sia``: MODEL/sia.json and MODEL/*/sia.json."""
    d = Path(model_source)
    if not d.is_dir():
        return []
    return [p for p in [d / FILES["json"], *sorted(d.glob(f"*/{FILES['json']}"))] if p.is_file()]


def read_report(path: str | Path) -> tuple[dict, Path]:
    """The report at ``path`` (a sia.json, or a folder holding one); CascadePruneError when it is not one."""
    p = Path(path)
    if p.is_dir():
        p = p / FILES["json"]
    if not p.is_file():
        raise CascadePruneError(f"--sia {path}: no sia report there (write one with `cascadeprune sia MODEL --task "
                                f"TASK --out DIR`)")
    try:
        rep = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CascadePruneError(f"--sia {p}: not readable JSON ({e})") from None
    if not isinstance(rep, dict) or rep.get("format") != "cascadeprune-sia/1" or not isinstance(
            rep.get("granularities"), dict):
        raise CascadePruneError(f"--sia {p}: not a cascadeprune sia report (format cascadeprune-sia/1)")
    return rep, p


def mismatch(rep: dict, fp: dict) -> str | None:
    """Why a report does not belong to the model with fingerprint ``fp`` (None when it does)."""
    got = rep.get("fingerprint")
    if got is None:
        return "it carries no model fingerprint (written before reports had one); measure again with --out"
    if got.get("family") != fp["family"]:
        return f"it was measured on {rep.get('model')!r}, a {got.get('family')} model; this one is {fp['family']}"
    for key, what in (("block_params", "block parameters"), ("layers", "layer shapes"), ("weights_sha256", "weights")):
        if got.get(key) != fp[key]:
            return f"it was measured on {rep.get('model')!r}, whose {what} differ from this model's"
    return None


def load_for(model: nn.Module, path: str | Path) -> tuple[dict, Path]:
    """The report at ``path`` if it was measured on ``model``; else CascadePruneError saying why."""
    rep, p = read_report(path)
    why = mismatch(rep, fingerprint(model))
    if why:
        raise CascadePruneError(f"--sia {p}: not a report of this model: {why}")
    return rep, p


def find_for(model: nn.Module, model_source: str) -> tuple[dict | None, Path | None, list[str]]:
    """The newest stored report inside the model's directory that matches ``model``, and notes on the ones
    skipped (another model's, unreadable)."""
    fp, found, notes = None, [], []
    for p in candidates(model_source):
        try:
            rep, _ = read_report(p)
        except CascadePruneError as e:
            notes.append(f"skipped {p}: {str(e).split(': ', 1)[-1]}")
            continue
        fp = fp or fingerprint(model)
        why = mismatch(rep, fp)
        if why:
            notes.append(f"skipped {p}: {why}")
        else:
            found.append((p.stat().st_mtime, p, rep))
    if not found:
        return None, None, notes
    _, p, rep = max(found, key=lambda x: x[0])
    return rep, p, notes
