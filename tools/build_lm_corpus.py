"""Regenerate the LM task's shipped corpus slice (src/cascadeprune/tasks/lm/corpus/) from text that
reaches a machine offline through package registries, and write its MANIFEST.json (provenance,
licence, sha256 and size of every document).

    python tools/build_lm_corpus.py     # Debian's /usr/share/common-licenses + this Python's stdlib

Domains:
- prose: licence texts as shipped by Debian's base-files package (/usr/share/common-licenses);
  each licence permits verbatim copying of its own text.
- code: Python source files of the CPython 3.11 standard library (PSF License 2.0).
- technical: the Python Language Reference topics in the standard library's pydoc_data/topics.py
  (CPython 3.11 documentation, PSF License 2.0).
The slice is shipped (~100 kB per domain) so splits do not move with the local OS or Python.
"""

from __future__ import annotations

import hashlib
import json
import sys
import sysconfig
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "cascadeprune" / "tasks" / "lm" / "corpus"
LICENSES = Path("/usr/share/common-licenses")
PROSE = ["GPL-3", "Apache-2.0", "MPL-2.0", "GFDL-1.3", "LGPL-2.1", "Artistic"]
CODE = ["textwrap.py", "heapq.py", "bisect.py", "fnmatch.py", "shlex.py", "glob.py", "colorsys.py", "graphlib.py",
        "statistics.py", "fractions.py", "sched.py", "queue.py"]
TECH_CHARS = 110_000


def docs() -> dict[str, list[dict]]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    prose = [{"doc": n, "source": f"{LICENSES / n} (Debian base-files)", "licence": f"{n} (verbatim copying permitted)",
              "text": (LICENSES / n).read_text()} for n in PROSE]
    code = [{"doc": n, "source": f"CPython {sys.version.split()[0]} Lib/{n}", "licence": "PSF-2.0",
             "text": (stdlib / n).read_text()} for n in CODE]
    from pydoc_data.topics import topics

    tech, total = [], 0
    for key in sorted(topics):
        if total >= TECH_CHARS:
            break
        tech.append({"doc": f"topics:{key}", "source": f"CPython {sys.version.split()[0]} Lib/pydoc_data/topics.py",
                     "licence": "PSF-2.0", "text": topics[key]})
        total += len(topics[key])
    return {"prose": prose, "code": code, "technical": tech}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    manifest = {"format": "cascadeprune-lm-corpus/1", "domains": {}}
    for domain, items in docs().items():
        lines = [json.dumps(d, ensure_ascii=False) for d in items]
        (OUT / f"{domain}.jsonl").write_text("\n".join(lines) + "\n")
        manifest["domains"][domain] = [
            {k: d[k] for k in ("doc", "source", "licence")} | {"chars": len(d["text"]),
                                                               "sha256": hashlib.sha256(d["text"].encode()).hexdigest()}
            for d in items]
        print(f"{domain}: {len(items)} documents, {sum(len(d['text']) for d in items):,} characters")
    (OUT / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
