"""Save a (pruned) model as a Hugging Face directory, atomically.

The directory holds ``config.json`` + ``model.safetensors`` as written by ``save_pretrained``
and ``plan.json``, the cumulative plan in ORIGINAL indices. The config also carries the plan and
the dense config under the ``cascadeprune`` key, which :func:`cascadeprune.load_model` uses.

Everything is written into a hidden sibling folder first and renamed into place at the end: an
interrupted save never leaves a directory at ``out`` that looks complete. An existing ``out``
is replaced only with ``overwrite=True``, and only after the new one is complete.

Example::

    save_model(apply_plan(model, plan), "out/pruned")
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path

from torch import nn

from cascadeprune.arch.resolve import resolve
from cascadeprune.errors import OutputExistsError
from cascadeprune.plan import applied_plan

PLAN_FILE = "plan.json"


@contextlib.contextmanager
def quiet_transformers():
    """Hide transformers' per-shard progress bars: our own output says what was written."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def save_model(model: nn.Module, out: str | Path, overwrite: bool = False) -> Path:
    """Write ``model`` to ``out`` (config, safetensors, plan.json) and return the path."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise OutputExistsError(f"{out} already exists and is not empty; choose another --out or pass --overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        with quiet_transformers():
            model.save_pretrained(tmp, safe_serialization=True)
        if not getattr(model, "reference", False):  # a reference model (no transformer blocks) has no plan
            (tmp / PLAN_FILE).write_text(applied_plan(resolve(model)).to_json() + "\n")
        swap_into_place(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def swap_into_place(tmp: Path, out: Path) -> None:
    if not out.exists():
        os.rename(tmp, out)
        return
    old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except OSError:
        os.rename(old, out)  # put the previous output back
        raise
    if old.is_dir():
        shutil.rmtree(old)
    else:
        old.unlink()
