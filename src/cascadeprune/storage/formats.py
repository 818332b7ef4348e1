"""Registry of directory formats that :func:`cascadeprune.load_model` can read besides plain
Hugging Face directories (e.g. a task's classifier: front end + backbone + head).

A format is recognised by a marker file in the directory and loaded by its own function; the
task that owns the format registers it when its package is imported. Storage itself knows no
task: the top-level package lists the modules that provide formats (``cascadeprune.FORMAT_PROVIDERS``,
i.e. ``cascadeprune.tasks``), and they are imported the first time a directory is looked up, so a
fresh process that only calls ``load_model(DIR)`` still reads every directory the CLI writes.

Example::

    register_format(DirectoryFormat("cascadeprune-classifier/1", "classifier.json", load_classifier_dir))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn


@dataclass(frozen=True)
class DirectoryFormat:
    name: str
    marker: str  # a file whose presence identifies the format
    load: Callable[[Path, torch.dtype], nn.Module]


FORMATS: dict[str, DirectoryFormat] = {}


def register_format(fmt: DirectoryFormat) -> DirectoryFormat:
    """Register ``fmt``; a second format with the same name or marker is refused."""
    for other in FORMATS.values():
        if other.name == fmt.name or other.marker == fmt.marker:
            raise ValueError(f"directory format {fmt.name!r} (marker {fmt.marker}) clashes with {other.name!r}")
    FORMATS[fmt.name] = fmt
    return fmt


_providers_loaded = False


def load_providers() -> None:
    """Import the modules named in ``cascadeprune.FORMAT_PROVIDERS`` once (they register formats)."""
    global _providers_loaded
    if _providers_loaded:
        return
    _providers_loaded = True
    import importlib

    import cascadeprune

    for module in getattr(cascadeprune, "FORMAT_PROVIDERS", ()):
        importlib.import_module(module)


def format_of(path: Path) -> DirectoryFormat | None:
    """The registered format whose marker file ``path`` holds, if any."""
    load_providers()
    for fmt in FORMATS.values():
        if (path / fmt.marker).is_file():
            return fmt
    return None
