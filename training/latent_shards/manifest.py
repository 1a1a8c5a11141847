"""The shard manifest (`manifest.json` beside the shards): read it and list a split's shards."""

from __future__ import annotations

import json
from pathlib import Path

MANIFEST = "manifest.json"
FORMAT = "fairskin-latent-shards/1"


def read_manifest(folder_or_file: Path | str) -> dict:
    path = Path(folder_or_file)
    path = path / MANIFEST if path.is_dir() else path
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: cannot read the latent-shard manifest ({error})") from error
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    return manifest


def shard_paths(folder: Path | str, split: str) -> list[Path]:
    """The shards of `split`, in manifest order, as paths inside `folder`."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    paths = [folder / row["shard"] for row in manifest["shards"] if row["split"] == split]
    if not paths:
        raise ValueError(f"{folder / MANIFEST}: no shards for split {split!r}; splits: {sorted(manifest['splits'])}")
    return paths
