"""The bearing task's directory formats, registered with storage by :mod:`cascadeprune.wiring` so that
:func:`cascadeprune.load_model` reads them: the classifier (``classifier.json`` + ``head.safetensors`` +
``backbone/``) and the reference CNN (``reference.json`` + ``model.safetensors``, ``tasks/bearing/cnn.py``).

Names and markers only, and the loaders by reference: reading this module imports no torch.

Example::

    clf = load_classifier_dir(Path("runs/clf"))   # what load_model("runs/clf") calls
"""

from __future__ import annotations

from pathlib import Path

from cascadeprune.storage.formats import DirectoryFormat

CLASSIFIER = "cascadeprune-classifier/1"
CLASSIFIER_MARKER = "classifier.json"
REFERENCE = "cascadeprune-reference/1"
REFERENCE_MARKER = "reference.json"


def load_classifier_dir(path: Path, dtype=None):
    """A :class:`VibrationClassifier` from its directory; the backbone may be pruned (non-uniform)."""
    import torch

    from cascadeprune.errors import ModelSourceError
    from cascadeprune.storage import load_model
    from cascadeprune.tasks.bearing import cnn
    from cascadeprune.tasks.bearing.classifier import BACKBONE_DIR, HEAD_FILE, META_FILE, VibrationClassifier

    dtype = dtype or torch.float32
    meta = cnn.read_meta(path / META_FILE)
    backbone = load_model(path / BACKBONE_DIR, dtype)
    head = cnn.read_weights(path / HEAD_FILE, "front end and head weights")
    try:
        return VibrationClassifier.from_parts(backbone, meta, head).to(dtype)
    except (ValueError, KeyError, RuntimeError) as e:
        raise ModelSourceError(f"{path}: not a usable classifier directory ({e})") from e


CLASSIFIER_FORMAT = DirectoryFormat(CLASSIFIER, CLASSIFIER_MARKER, f"{__name__}:load_classifier_dir")
REFERENCE_FORMAT = DirectoryFormat(REFERENCE, REFERENCE_MARKER, "cascadeprune.tasks.bearing.cnn:load_reference_dir")
