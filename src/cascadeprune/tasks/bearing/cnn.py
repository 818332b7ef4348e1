"""The reference a user would pick instead of an LLM: a WDCNN-style 1-D CNN on raw vibration.

After Zhang et al., "A New Deep Learning Model for Fault Diagnosis with Good Anti-Noise and Domain
Adaptation Ability on Raw Vibration Signals" (Sensors 2017): a **wide first kernel** (64 samples,
stride 16) that acts as a learned filter bank and suppresses high-frequency noise, then small
3-sample kernels. Each of the 5 blocks is conv -> batch norm -> ReLU -> max-pool by 2; then a
100-unit hidden layer and the class scores. With the default 1,024-sample window and 4 classes
it has 47,304 parameters and costs 0.75 MFLOPs per window. Windows are normalised per window (zero mean, unit variance), as for the
transformer classifiers, so both see the same input.

It trains with the same ``cascadeprune train`` (``--backbone wdcnn``) on the same windows and
splits, evaluates with ``eval``, exports with ``export`` and is measured with ``bench``; it has no
transformer blocks, so ``compress`` and ``apply`` refuse it (there is nothing for them to prune).

Directory layout (``save_pretrained``; read by ``cascadeprune.load_model``)::

    reference.json       format, architecture, classes, window, provenance
    model.safetensors    weights (batch-norm statistics included)

Example::

    cnn = WDCNNClassifier(("normal", "inner", "outer", "ball"), window=1024)
    logits = cnn(torch.randn(8, 1024))
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from cascadeprune.errors import ModelSourceError
from cascadeprune.tasks.bearing.format import REFERENCE as FORMAT
from cascadeprune.tasks.bearing.format import REFERENCE_MARKER as META_FILE

WEIGHTS_FILE = "model.safetensors"
REFERENCE_BACKBONES = ("wdcnn",)


class _Normalise(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - x.mean(dim=1, keepdim=True)) / (x.std(dim=1, keepdim=True) + 1e-6)


def _block(c_in: int, c_out: int, kernel: int, stride: int, padding: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=padding), nn.BatchNorm1d(c_out),
                         nn.ReLU(), nn.MaxPool1d(2))


class WDCNNClassifier(nn.Module):
    """Raw window ``[batch, window]`` -> logits ``[batch, classes]``; see the module docstring."""

    reference = True  # no transformer blocks: compress/apply refuse it, export/bench treat it as a reference row

    def __init__(self, classes: tuple[str, ...], window: int = 1024, channels: tuple[int, ...] = (16, 32, 64, 64, 64),
                 first_kernel: int = 64, first_stride: int = 16, hidden: int = 100, meta: dict | None = None):
        super().__init__()
        self.classes = tuple(classes)
        self.arch = {"name": "wdcnn", "window": int(window), "channels": list(channels), "first_kernel": first_kernel,
                     "first_stride": first_stride, "hidden": hidden}
        self.meta = dict(meta or {})
        length = window // first_stride
        if window % first_stride or length < 2 ** len(channels):
            raise ValueError(f"window {window} is too short for {len(channels)} blocks after a stride of {first_stride} "
                             f"(needs a multiple of {first_stride}, at least {first_stride * 2 ** len(channels)})")
        blocks = [_block(1, channels[0], first_kernel, first_stride, (first_kernel - first_stride) // 2)]
        blocks += [_block(a, b, 3, 1, 1) for a, b in zip(channels, channels[1:])]
        # names chosen so that the ONNX profiler's parts read frontend / blocks / head like a transformer's
        self.frontend = _Normalise()
        self.backbone = nn.Module()
        self.backbone.blocks = nn.ModuleList(blocks)
        self.flat = channels[-1] * (length >> len(channels))
        self.head = nn.Sequential(nn.Linear(self.flat, hidden), nn.ReLU(), nn.Linear(hidden, len(self.classes)))

    @property
    def window(self) -> int:
        return self.arch["window"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.frontend(x)[:, None]
        for block in self.backbone.blocks:
            h = block(h)
        return self.head(h.flatten(1))

    def block_params(self) -> int:
        """Every weight of the model: a reference has no part that compression would leave out."""
        return sum(p.numel() for p in self.parameters())

    def flops_per_window(self) -> dict[str, int]:
        """Forward FLOPs for one window (2 per multiply-add) of the convolutions and the two dense layers."""
        length, blocks = self.window, 0
        for block in self.backbone.blocks:
            conv = block[0]
            length = (length + 2 * conv.padding[0] - conv.kernel_size[0]) // conv.stride[0] + 1
            blocks += 2 * conv.weight.numel() * length
            length //= 2
        head = sum(2 * m.weight.numel() for m in self.head if isinstance(m, nn.Linear))
        return {"frontend": 0, "blocks": blocks, "head": head, "total": blocks + head, "tokens": 0}

    def describe(self) -> dict:
        return {"format": FORMAT, "classes": list(self.classes), "arch": self.arch, **self.meta}

    def save_pretrained(self, directory: str | Path, **_) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(d / WEIGHTS_FILE))
        (d / META_FILE).write_text(json.dumps(self.describe(), indent=2) + "\n")


def build_reference(name: str, classes: tuple[str, ...], window: int, meta: dict | None = None) -> nn.Module:
    if name not in REFERENCE_BACKBONES:
        raise ValueError(f"reference model {name!r}: choose one of {', '.join(REFERENCE_BACKBONES)}")
    return WDCNNClassifier(classes, window=window, meta=meta)


def read_weights(file: Path, what: str) -> dict[str, torch.Tensor]:
    """A safetensors file of a model directory, or a one-line :class:`ModelSourceError` naming it."""
    if not file.is_file():
        raise ModelSourceError(f"{file}: missing ({what})")
    try:
        return load_file(file)
    except Exception as e:
        raise ModelSourceError(f"{file}: corrupt safetensors file ({e})") from e


def read_meta(file: Path) -> dict:
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise ModelSourceError(f"{file}: corrupt JSON ({e})") from None


def load_reference_dir(path: Path, dtype: torch.dtype = torch.float32) -> nn.Module:
    """A :class:`WDCNNClassifier` from its directory."""
    meta = read_meta(path / META_FILE)
    if meta.get("format") != FORMAT:
        raise ModelSourceError(f"{path / META_FILE}: format must be {FORMAT!r}, got {meta.get('format')!r}")
    arch = dict(meta.get("arch") or {})
    if arch.pop("name", None) != "wdcnn":
        raise ModelSourceError(f"{path / META_FILE}: unknown reference architecture {meta.get('arch')!r}")
    state = read_weights(path / WEIGHTS_FILE, "the reference model's weights")
    extra = {k: v for k, v in meta.items() if k not in {"format", "classes", "arch"}}
    try:
        model = WDCNNClassifier(tuple(meta["classes"]), meta=extra, **arch)
        model.load_state_dict(state)
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        raise ModelSourceError(f"{path}: not a usable reference model directory ({e})") from e
    return model.to(dtype).eval()
