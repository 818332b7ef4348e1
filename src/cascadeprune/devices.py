"""Torch device names checked once, with an error that says what is wrong.

Example::

    resolve_device("cpu")     # torch.device("cpu")
"""

from __future__ import annotations

import torch

from cascadeprune.errors import CascadePruneError


def resolve_device(name: str) -> torch.device:
    """``torch.device(name)``, or a clear error when it is malformed or absent on this machine."""
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError) as e:
        raise CascadePruneError(f"device {name!r} is not a torch device ({e})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CascadePruneError(f"device {name!r}: no CUDA device is available on this machine; use 'cpu'")
    return dev
