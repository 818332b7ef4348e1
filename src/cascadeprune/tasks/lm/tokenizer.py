"""Tokenizers for the LM task: the model's own (a Hugging Face tokenizer saved beside it, or read
from a GGUF), else a byte-level stand-in for tiny random models (byte value modulo the vocabulary).

A compressed model's directory carries its tokenizer (``save_tokenizer``), so
``cascadeprune eval DIR --task lm`` tokenizes exactly as compression did.

Example::

    tok = tokenizer_for("smollm2-135m", model)
    tok.encode("def f(x): return x")
"""

from __future__ import annotations

import json
from pathlib import Path

BYTES_FILE = "cascadeprune_tokenizer.json"


class ByteTokenizer:
    """UTF-8 bytes modulo ``vocab_size``: enough to make next-token prediction real for tiny models."""

    kind = "bytes"

    def __init__(self, vocab_size: int):
        self.vocab_size = vocab_size

    def encode(self, text: str) -> list[int]:
        return [b % self.vocab_size for b in text.encode("utf-8")]

    def save_pretrained(self, directory: str | Path) -> None:
        Path(directory, BYTES_FILE).write_text(json.dumps({"kind": "bytes", "vocab_size": self.vocab_size}) + "\n")


class HFTokenizer:
    kind = "hf"

    def __init__(self, tok):
        self.tok = tok

    def encode(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def save_pretrained(self, directory: str | Path) -> None:
        self.tok.save_pretrained(directory)


def tokenizer_for(source: str | Path | None, model):
    """The tokenizer of the model loaded from ``source`` (a name, a .gguf, or a directory)."""
    from transformers import AutoTokenizer

    from cascadeprune.storage.sources import PRETRAINED

    name = str(source) if source is not None else ""
    if name in PRETRAINED and not Path(name).exists():
        source = PRETRAINED[name]()
    path = Path(source) if source is not None else None
    if path is not None and path.is_file() and path.suffix == ".gguf":
        return HFTokenizer(AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name))
    if path is not None and path.is_dir():
        if (path / BYTES_FILE).is_file():
            return ByteTokenizer(json.loads((path / BYTES_FILE).read_text())["vocab_size"])
        if (path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file():
            return HFTokenizer(AutoTokenizer.from_pretrained(path))
    return ByteTokenizer(model.config.vocab_size)
