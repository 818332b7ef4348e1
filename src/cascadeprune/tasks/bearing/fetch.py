"""Download the official CWRU Bearing Data Center files and verify their checksums.

Each file is streamed into a temporary file next to its final place, hashed while it is written,
and moved into place (``os.replace``, atomic on one file system) only once its digest matches the
catalogue: SHA-256 where the catalogue has one, else MD5 (files 98-100 only have MD5 published).
A file already present with the right checksum is not downloaded again; one with a wrong checksum
is replaced. Nothing half-written is ever left at the final path or as a stray temporary file.

Example::

    from cascadeprune.tasks.bearing.fetch import fetch_cwru
    paths = fetch_cwru("data", numbers=[105, 109])
    # -> [data/cwru/105.mat, data/cwru/48k_DE/109.mat]

    # a mirror with the same ``<number>.mat`` layout:
    fetch_cwru("data", base_url="http://mirror.example/cwru/{number}.mat")
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from cascadeprune.tasks.bearing.cwru import OFFICIAL_URL, CWRUFile, catalogue
from cascadeprune.tasks.bearing.recording import DataError

CHUNK = 1 << 20  # 1 MiB: small enough to stream, large enough to keep per-chunk overhead negligible
USER_AGENT = "cascadeprune-fetch"  # some servers reject urllib's default agent


def expected_digest(entry: CWRUFile) -> tuple[str, str]:
    """(algorithm, hex digest) the catalogue promises for ``entry``: SHA-256 preferred, MD5 otherwise."""
    if entry.sha256:
        return "sha256", entry.sha256.lower()
    if entry.md5:
        return "md5", entry.md5.lower()
    raise DataError(f"cwru/{entry.path}: the catalogue has no checksum for file {entry.number}; cannot verify it")


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file, read in chunks so large files never sit in memory whole."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def verify_file(path: Path, entry: CWRUFile) -> tuple[bool, str, str]:
    """(ok, algorithm, actual digest) of ``path`` against the catalogue; a missing file is not ok."""
    algorithm, expected = expected_digest(entry)
    if not Path(path).is_file():
        return False, algorithm, ""
    actual = file_digest(Path(path), algorithm)
    return actual == expected, algorithm, actual


def select_entries(numbers: list[int] | None) -> list[CWRUFile]:
    """Catalogue entries for ``numbers`` (all when None), checked up front so a typo downloads nothing."""
    cat = catalogue()
    if numbers is None:
        return list(cat.values())
    unknown = [n for n in numbers if n not in cat]
    if unknown:
        raise DataError(
            f"unknown CWRU file number(s): {', '.join(map(str, unknown))}; valid numbers are the 'number' column "
            "of cascadeprune/tasks/bearing/cwru_files.csv (or sorted(cascadeprune.tasks.bearing.cwru.catalogue()))")
    return [cat[n] for n in dict.fromkeys(numbers)]  # keep order, drop repeats


def _copy_hashing(src: BinaryIO, dst: BinaryIO, algorithm: str, bar: tqdm) -> str:
    """Stream ``src`` to ``dst`` chunk by chunk, hashing on the way (no second read of the file)."""
    h = hashlib.new(algorithm)
    while chunk := src.read(CHUNK):
        dst.write(chunk)
        h.update(chunk)
        bar.update(len(chunk))
    return h.hexdigest()


def _download_to(url: str, tmp: BinaryIO, entry: CWRUFile, algorithm: str, progress: bool, timeout: float) -> str:
    """Download ``url`` into the open file ``tmp``; return its digest. Network failures become DataError."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            total = response.headers.get("Content-Length")
            with tqdm(total=int(total) if total and total.isdigit() else None, unit="B", unit_scale=True,
                      unit_divisor=1024, desc=f"cwru/{entry.path}", disable=not progress) as bar:
                return _copy_hashing(response, tmp, algorithm, bar)
    except urllib.error.HTTPError as e:  # before URLError: HTTPError is a subclass
        raise DataError(f"{url}: download failed: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise DataError(f"{url}: download failed: {e.reason}") from None
    except (TimeoutError, ConnectionError, http.client.HTTPException) as e:  # during the body, after urlopen
        raise DataError(f"{url}: download failed: {type(e).__name__}: {str(e) or 'timed out'}") from None


def fetch_one(entry: CWRUFile, dest: Path, base_url: str, progress: bool, timeout: float) -> Path:
    """Download one file to ``dest`` via a temporary sibling, moved into place only if its checksum matches."""
    algorithm, expected = expected_digest(entry)
    url = base_url.format(number=entry.number)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Same folder as dest so os.replace is a rename on one file system, never a copy that could be cut short.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            actual = _download_to(url, f, entry, algorithm, progress, timeout)
        if actual != expected:
            raise DataError(f"cwru/{entry.path}: {algorithm} checksum mismatch for {url}: "
                            f"expected {expected}, got {actual}")
        os.replace(tmp, dest)
    finally:
        # Any failure (network, checksum, disk, Ctrl-C) must not leave a stray temporary file.
        tmp.unlink(missing_ok=True)
    return dest


def fetch_cwru(to: str | Path, numbers: list[int] | None = None, base_url: str = OFFICIAL_URL,
               progress: bool = True, timeout: float = 60.0) -> list[Path]:
    """Download CWRU files into ``to/cwru/<catalogue path>``; return their final paths in request order.

    ``numbers``: official file numbers (all catalogued files when None). ``base_url`` must contain
    ``{number}``. Files already present with a valid checksum are skipped. Raises DataError on an
    unknown number, a network error (naming the URL) or a checksum mismatch (naming file and digests).
    """
    root = Path(to) / "cwru"
    out = []
    for entry in select_entries(numbers):
        dest = root / entry.path
        ok, _, _ = verify_file(dest, entry)
        out.append(dest if ok else fetch_one(entry, dest, base_url, progress, timeout))
    return out
