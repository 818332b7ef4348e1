"""The user's own text for the LM task: ``lm[:DOMAINS]@data=PATH``.

``PATH`` is one ``.txt`` / ``.jsonl`` file (one domain, named by the file's stem) or a folder: every
``.txt`` / ``.jsonl`` file directly inside is a domain (its stem), every sub-folder is a domain (its
name; all ``.txt`` / ``.jsonl`` files under it). A ``.txt`` file is one document; a ``.jsonl`` file
holds one document per line, ``{"text": ...}`` (an optional ``"doc"`` names it) or a JSON string.

Documents are cut into blocks and split by the shipped corpus's rule
(:func:`cascadeprune.tasks.lm.corpus.document_blocks`: block ``k`` -> ``k % 10``; 0-5 train, 6
calibration, 7 val, 8-9 test), so no text is in two splits. A domain needs at least one block in
every split (in practice >= 9 blocks of 2,000 characters in one document); empty, binary, undecodable
or too-short files are refused with one line naming the file.

Example::

    c, docs = load_user_corpus("my_text/")          # my_text/manuals.txt, my_text/tickets/*.jsonl
    c.domains                                       # ("manuals", "tickets")
"""

from __future__ import annotations

import json
from pathlib import Path

from cascadeprune.tasks.lm.corpus import BLOCK_CHARS, SPLITS, Corpus, CorpusError, document_blocks

SUFFIXES = (".txt", ".jsonl")
MIN_BLOCKS = 9  # blocks 0..8 of one document reach train, calibration, val and test


def _files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix in SUFFIXES)


def domain_files(path: str | Path) -> dict[str, list[Path]]:
    """Domain name -> its files, without reading them (cheap: used to check a spec before a model loads)."""
    p = Path(path)
    if p.is_file():
        if p.suffix not in SUFFIXES:
            raise CorpusError(f"data={path}: a data file must be .txt or .jsonl")
        return {p.stem: [p]}
    if not p.is_dir():
        raise CorpusError(f"data={path}: no such file or folder")
    out: dict[str, list[Path]] = {}
    for child in sorted(p.iterdir()):
        name = child.stem if child.is_file() else child.name
        files = [child] if child.is_file() and child.suffix in SUFFIXES else _files(child) if child.is_dir() else []
        if not files or name.startswith("."):
            continue
        if name in out:
            raise CorpusError(f"data={path}: domain {name!r} is given twice ({out[name][0].name} and {child.name})")
        out[name] = files
    if not out:
        raise CorpusError(f"data={path}: no .txt or .jsonl file in the folder")
    return out


def _read_text(f: Path) -> str:
    raw = f.read_bytes()
    if not raw.strip():
        raise CorpusError(f"{f}: empty file")
    if b"\0" in raw[:1 << 16]:
        raise CorpusError(f"{f}: binary file (NUL bytes); give UTF-8 text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError(f"{f}: not UTF-8 text (byte {e.start})") from None


def _documents(f: Path) -> list[tuple[str, str]]:
    text = _read_text(f)
    if f.suffix == ".txt":
        return [(f.stem, text)]
    docs = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError as e:
            raise CorpusError(f"{f}:{n}: not JSON ({e.msg})") from None
        body = d if isinstance(d, str) else d.get("text") if isinstance(d, dict) else None
        if not isinstance(body, str):
            raise CorpusError(f'{f}:{n}: a line must be {{"text": "..."}} or a JSON string')
        docs.append((str(d.get("doc", f"{f.stem}:{n}")) if isinstance(d, dict) else f"{f.stem}:{n}", body))
    return docs


def load_user_corpus(path: str | Path, domains: tuple[str, ...] | None = None) -> tuple[Corpus, dict]:
    """The user's corpus (only ``domains`` when given) and, per domain, its documents for describe."""
    files = domain_files(path)
    domains = tuple(domains or files)
    blocks, documents = [], {}
    for d in domains:
        documents[d] = []
        mine = []
        for f in files[d]:
            for doc, text in _documents(f):
                mine.extend(document_blocks(d, doc, text))
                documents[d].append({"doc": doc, "source": str(f), "chars": len(text)})
        missing = [s for s in SPLITS if not any(b.split == s for b in mine)]
        if missing:
            where = files[d][0] if len(files[d]) == 1 else Path(path) / d
            raise CorpusError(f"{where}: too short for domain {d!r}: no {missing[0]} block; a document needs >= "
                              f"{MIN_BLOCKS} blocks of {BLOCK_CHARS:,} characters ({(MIN_BLOCKS - 1) * BLOCK_CHARS + 1:,}+ "
                              f"characters) to reach every split")
        blocks.extend(mine)
    return Corpus(domains, blocks), documents
