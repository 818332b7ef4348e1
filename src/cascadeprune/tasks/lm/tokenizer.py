"""Tokenizers for the LM task: the model's own (a Hugging Face tokenizer saved beside it, or read
from a GGUF), one named in the spec (``lm@tokenizer=PATH``), or a byte-level stand-in for the
built-in tiny random models (byte value modulo the vocabulary). Any other model without a tokenizer
is refused: a byte-level stand-in would give a pretrained model meaningless perplexities.

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
BYTE_VOCAB_MAX = 256  # at most one token per byte value: the byte-level stand-in loses nothing


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


def _from_path(path: Path):
    """The tokenizer stored at ``path`` (a .gguf, or a directory with HF tokenizer files or a saved
    byte tokenizer), or None."""
    from transformers import AutoTokenizer

    if path.is_file() and path.suffix == ".gguf":
        return HFTokenizer(AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name))
    if path.is_dir():
        if (path / BYTES_FILE).is_file():
            return ByteTokenizer(json.loads((path / BYTES_FILE).read_text())["vocab_size"])
        if (path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file():
            return HFTokenizer(AutoTokenizer.from_pretrained(path))
    return None


def tokenizer_for(source: str | Path | None, model, explicit: str | Path | None = None):
    """The tokenizer of the model loaded from ``source`` (a name, a .gguf, or a directory).

    ``explicit`` (the task's ``tokenizer=PATH``; ``bytes`` for the byte-level stand-in) wins. A byte
    tokenizer is used without being asked only for the built-in ``tiny-*`` random models and models
    whose vocabulary has at most 256 tokens (one per byte value); any other model without tokenizer
    files is refused (a byte tokenizer would make its perplexity meaningless)."""
    from cascadeprune.errors import CascadePruneError
    from cascadeprune.storage.sources import PRETRAINED

    vocab = model.config.vocab_size
    if explicit is not None:
        if str(explicit) == "bytes":
            return ByteTokenizer(vocab)
        tok = _from_path(Path(explicit)) if Path(explicit).exists() else None
        if tok is None:
            raise CascadePruneError(f"tokenizer={explicit}: not a tokenizer (a directory with tokenizer.json or "
                                    f"tokenizer_config.json, a .gguf, or 'bytes')")
        _check_vocab(tok, vocab, f"tokenizer={explicit}")
        return tok
    name = str(source) if source is not None else ""
    if name.startswith("tiny-") and not Path(name).exists():
        return ByteTokenizer(vocab)
    if name in PRETRAINED and not Path(name).exists():
        source = PRETRAINED[name]()
    tok = _from_path(Path(source)) if source is not None else None
    if tok is None and vocab <= BYTE_VOCAB_MAX:  # a byte-sized vocabulary: a test model saved without one
        return ByteTokenizer(vocab)
    if tok is None:
        raise CascadePruneError(f"model {name or '(in memory)'} has no tokenizer (no tokenizer.json, tokenizer_config.json "
                                f"or {BYTES_FILE}); give one in the task spec: lm@tokenizer=PATH")
    return tok


def _check_vocab(tok, vocab: int, what: str) -> None:
    from cascadeprune.errors import CascadePruneError

    n = getattr(tok, "vocab_size", None) if tok.kind == "bytes" else len(tok.tok)
    if n is not None and n > vocab:
        raise CascadePruneError(f"{what}: its {n:,} tokens do not fit the model's vocabulary of {vocab:,}")
