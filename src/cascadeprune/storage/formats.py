"""Registry of directory formats that :func:`cascadeprune.load_model` can read besides plain
Hugging Face directories (e.g. a task's classifier: front end + backbone + head).

A format is recognised by a marker file in the directory and loaded by its own function, given
as ``"module:function"`` and imported only when a directory of that format is loaded. Storage
knows no task: :mod:`cascadeprune.wiring` registers the tasks' formats (the one place registries
are filled, run when ``cascadeprune`` is imported), so a fresh process that only calls
``load_model(DIR)`` still reads every directory the CLI writes.

Example::

    register_format(DirectoryFormat("cascadeprune-classifier/1", "classifier.json",
                                    "cascadeprune.tasks.bearing.format:load_classifier_dir"))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from cascadeprune._lazy import load_ref

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass(frozen=True)
class DirectoryFormat:
    name: str
    marker: str  # a file whose presence identifies the format
    load: Callable[[Path, torch.dtype], nn.Module] | str  # the loader, or its "module:function"

    def loader(self) -> Callable[[Path, torch.dtype], nn.Module]:
        return load_ref(self.load)


FORMATS: dict[str, DirectoryFormat] = {}


def register_format(fmt: DirectoryFormat) -> DirectoryFormat:
    """Register ``fmt``; a second format with the same name or marker is refused."""
    for other in FORMATS.values():
        if other.name == fmt.name or other.marker == fmt.marker:
            raise ValueError(f"directory format {fmt.name!r} (marker {fmt.marker}) clashes with {other.name!r}")
    FORMATS[fmt.name] = fmt
    return fmt


def format_of(path: Path) -> DirectoryFormat | None:
    """The registered format whose marker file ``path`` holds, if any."""
    for fmt in FORMATS.values():
        if (path / fmt.marker).is_file():
            return fmt
    return None
