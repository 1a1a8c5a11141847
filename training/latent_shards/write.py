"""Write a latent shard: byte-deterministic (fixed order, mtime, owner, mode; ustar) and atomic.

The same samples always give the same bytes, so a shard's sha256 identifies its content and an
unchanged shard is not rewritten (its file, mtime and DVC hash stay as they were).
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from training.latent_shards.format import LatentSample, sample_members


@dataclass(frozen=True)
class ShardInfo:
    path: Path
    count: int
    sha256: str
    bytes: int
    written: bool  # False when the file already held exactly these bytes


def shard_bytes(samples: list[LatentSample]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for sample in samples:
            for name, payload in sample_members(sample):
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(payload), 0, 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def write_shard(path: Path, samples: list[LatentSample]) -> ShardInfo:
    """Write `samples` (in the given order) to `path` via a temp file and a rename."""
    keys = [s.key for s in samples]
    if len(set(keys)) != len(keys):
        raise ValueError(f"{path}: duplicate keys {sorted({k for k in keys if keys.count(k) > 1})[:5]}")
    data = shard_bytes(samples)
    digest = hashlib.sha256(data).hexdigest()
    path = Path(path)
    if path.is_file() and path.stat().st_size == len(data) and hashlib.sha256(path.read_bytes()).hexdigest() == digest:
        return ShardInfo(path, len(samples), digest, len(data), written=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return ShardInfo(path, len(samples), digest, len(data), written=True)
