"""The classifier directory format (``classifier.json`` + ``head.safetensors`` + ``backbone/``),
registered with storage so that :func:`cascadeprune.load_model` reads it.

Example::

    clf = load_classifier_dir(Path("runs/clf"))   # what load_model("runs/clf") calls
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from cascadeprune.errors import ModelSourceError
from cascadeprune.storage.formats import DirectoryFormat
from cascadeprune.tasks.bearing import cnn
from cascadeprune.tasks.bearing.classifier import BACKBONE_DIR, FORMAT, HEAD_FILE, META_FILE, VibrationClassifier


def load_classifier_dir(path: Path, dtype: torch.dtype = torch.float32) -> nn.Module:
    """A :class:`VibrationClassifier` from its directory; the backbone may be pruned (non-uniform)."""
    from cascadeprune.storage import load_model

    meta = cnn.read_meta(path / META_FILE)
    backbone = load_model(path / BACKBONE_DIR, dtype)
    head = cnn.read_weights(path / HEAD_FILE, "front end and head weights")
    try:
        return VibrationClassifier.from_parts(backbone, meta, head).to(dtype)
    except (ValueError, KeyError, RuntimeError) as e:
        raise ModelSourceError(f"{path}: not a usable classifier directory ({e})") from e


CLASSIFIER_FORMAT = DirectoryFormat(FORMAT, META_FILE, load_classifier_dir)
# the reference CNN (tasks/bearing/cnn.py): reference.json + model.safetensors
REFERENCE_FORMAT = DirectoryFormat(cnn.FORMAT, cnn.META_FILE, cnn.load_reference_dir)
