"""Vibration classifier: front end -> any transformer backbone -> pooling -> linear head.

The front end normalises each window (zero mean, unit variance), cuts it into non-overlapping
patches and projects each patch linearly to the backbone's hidden size; the backbone receives
these as ``inputs_embeds`` (its own position scheme applies: learned positions for GPT-2/BERT,
rotary for Llama/NeoX). Token embeddings and LM heads are not used: the backbone is the bare
trunk with a one-row token embedding. Pooling is the last position for causal decoders and the
mean for encoders.

The classifier exposes the backbone's ``config`` and ``base_model``, so every cascadeprune tool
(resolve, apply_plan, inspect, masking) works on it directly.

Directory layout (written by ``save_pretrained``, read by ``cascadeprune.load_model``)::

    classifier.json       format, classes, front end, pooling, provenance
    head.safetensors      front end and head weights
    backbone/             a Hugging Face directory (possibly pruned)

Example::

    clf = VibrationClassifier(backbone, classes=("normal", "inner", "outer", "ball"))
    logits = clf(torch.randn(8, 1024))
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from cascadeprune.arch.table import family_for

FORMAT = "cascadeprune-classifier/1"
META_FILE = "classifier.json"
HEAD_FILE = "head.safetensors"
BACKBONE_DIR = "backbone"


@dataclass(frozen=True)
class FrontEndConfig:
    window: int = 1024  # samples per window (12 kHz)
    patch: int = 32  # samples per token

    @property
    def tokens(self) -> int:
        return self.window // self.patch


class VibrationFrontEnd(nn.Module):
    def __init__(self, cfg: FrontEndConfig, hidden: int):
        super().__init__()
        if cfg.window % cfg.patch:
            raise ValueError(f"window {cfg.window} is not a multiple of patch {cfg.patch}")
        self.cfg = cfg
        self.proj = nn.Linear(cfg.patch, hidden)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # per-window normalisation: the classifier must not key on absolute vibration level
        x = (x - x.mean(dim=1, keepdim=True)) / (x.std(dim=1, keepdim=True) + 1e-6)
        patches = x.reshape(x.shape[0], self.cfg.tokens, self.cfg.patch)
        return self.norm(self.proj(patches))


def strip_token_embeddings(backbone: nn.Module) -> nn.Module:
    """Replace the token embedding by a one-row table (the classifier feeds inputs_embeds)."""
    old = backbone.get_input_embeddings()
    rows = (backbone.config.pad_token_id or 0) + 1 if getattr(backbone.config, "pad_token_id", None) is not None else 1
    backbone.set_input_embeddings(nn.Embedding(rows, old.embedding_dim, dtype=old.weight.dtype))
    backbone.config.vocab_size = rows
    return backbone


class VibrationClassifier(nn.Module):
    def __init__(self, backbone: nn.Module, classes: tuple[str, ...], frontend: FrontEndConfig = FrontEndConfig(),
                 meta: dict | None = None):
        super().__init__()
        family = family_for(backbone.config.model_type)
        max_pos = getattr(backbone.config, "max_position_embeddings", None)
        if max_pos is not None and frontend.tokens > max_pos:
            raise ValueError(f"{frontend.tokens} patches exceed the backbone's {max_pos} positions; use a larger patch")
        self.backbone = backbone
        self.classes = tuple(classes)
        self.pooling = "last" if family.causal else "mean"
        self.frontend = VibrationFrontEnd(frontend, backbone.config.hidden_size)
        self.head = nn.Linear(backbone.config.hidden_size, len(classes))
        self.meta = dict(meta or {})

    # cascadeprune tools see the backbone through these two
    @property
    def config(self):
        return self.backbone.config

    @property
    def base_model(self) -> nn.Module:
        return self.backbone.base_model

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.backbone(inputs_embeds=self.frontend(x), use_cache=False).last_hidden_state
        return h[:, -1] if self.pooling == "last" else h.mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def describe(self) -> dict:
        return {"format": FORMAT, "classes": list(self.classes), "frontend": asdict(self.frontend.cfg),
                "pooling": self.pooling, "backbone_class": type(self.backbone).__name__, **self.meta}

    def save_pretrained(self, directory: str | Path, **kwargs) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.backbone.save_pretrained(d / BACKBONE_DIR, **kwargs)
        state = {f"frontend.{k}": v.contiguous() for k, v in self.frontend.state_dict().items()}
        state |= {f"head.{k}": v.contiguous() for k, v in self.head.state_dict().items()}
        save_file(state, str(d / HEAD_FILE))
        (d / META_FILE).write_text(json.dumps(self.describe(), indent=2) + "\n")

    @staticmethod
    def from_parts(backbone: nn.Module, meta: dict, head_state: dict[str, torch.Tensor]) -> "VibrationClassifier":
        if meta.get("format") != FORMAT:
            raise ValueError(f"{META_FILE}: format must be {FORMAT!r}, got {meta.get('format')!r}")
        extra = {k: v for k, v in meta.items() if k not in {"format", "classes", "frontend", "pooling", "backbone_class"}}
        clf = VibrationClassifier(backbone, tuple(meta["classes"]), FrontEndConfig(**meta["frontend"]), extra)
        clf.frontend.load_state_dict({k[len("frontend."):]: v for k, v in head_state.items() if k.startswith("frontend.")})
        clf.head.load_state_dict({k[len("head."):]: v for k, v in head_state.items() if k.startswith("head.")})
        return clf.eval()
