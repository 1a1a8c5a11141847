"""Content hashes of files, read in blocks (shards and model files can be large)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of the file's bytes (the manifests use sha256)."""
    digest = hashlib.new(algorithm)
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_md5(path: Path) -> str:
    """The hash DVC 3 records for a single file: the plain md5 of its bytes (a content id, not security)."""
    return file_digest(path, "md5")
