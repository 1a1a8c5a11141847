"""Detect a truncated or corrupt shard before trusting it.

Python's tarfile (and so WebDataset) reads a tar cut exactly at a member boundary as a shorter, valid
archive: samples vanish silently. Walking the headers and requiring the end-of-archive block catches
every truncation, at the cost of one seek per member.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

BLOCK = tarfile.BLOCKSIZE  # 512


class ShardError(ValueError):
    """A shard that is truncated, corrupt or inconsistent; the message names the file."""


def verify_shard(path: Path | str) -> int:
    """Number of members of the tar at `path`; raises ShardError naming the shard if it is not whole."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as file:
            offset, members = 0, 0
            while True:
                file.seek(offset)
                block = file.read(BLOCK)
                if len(block) < BLOCK:
                    raise ShardError(f"{path}: truncated shard: no end-of-archive block after {members} members "
                                     f"(file ends at byte {size})")
                if block == bytes(BLOCK):
                    return members
                try:
                    info = tarfile.TarInfo.frombuf(block, tarfile.ENCODING, "surrogateescape")
                except tarfile.HeaderError as error:
                    raise ShardError(f"{path}: corrupt shard: bad tar header at byte {offset} ({error})") from error
                end = offset + BLOCK + -(-info.size // BLOCK) * BLOCK
                if end > size:
                    raise ShardError(f"{path}: truncated shard: member {info.name!r} needs {end} bytes, the file "
                                     f"has {size}")
                offset, members = end, members + 1
    except OSError as error:
        raise ShardError(f"{path}: cannot read shard ({error})") from error
