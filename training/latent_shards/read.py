"""Read latent shards: one shard as samples, or a whole split into a `LatentSet` in memory."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from training.conditions import encode as encode_condition
from training.latent_set import LatentSet
from training.latent_shards.format import MEMBERS, LatentSample, npy_array
from training.latent_shards.verify import ShardError, verify_shard

# Condition name (training/conditions.py) -> field of the sample's json.
CONDITION_FIELDS = {"label": "label", "skin_tone": "skin_tone_group", "sex": "sex"}


def parse_sample(key: str, members: dict[str, bytes], where: str) -> LatentSample:
    missing = [m for m in MEMBERS if m not in members]
    if missing:
        raise ShardError(f"{where}: sample {key!r} lacks {missing}; expected members {list(MEMBERS)}")
    return LatentSample(key=key, mean=npy_array(members["mean.npy"]), std=npy_array(members["std.npy"]),
                        meta=json.loads(members["json"]))


def iter_shard(path: Path | str) -> Iterator[LatentSample]:
    """The samples of one shard, in order; verifies the shard is whole first (ShardError names it)."""
    path = Path(path)
    verify_shard(path)
    key, members = None, {}
    with tarfile.open(path, mode="r:") as tar:
        for info in tar:
            name = Path(info.name).name
            this_key, _, member = name.partition(".")
            if key is not None and this_key != key:
                yield parse_sample(key, members, str(path))
                members = {}
            key = this_key
            if member in members:
                raise ShardError(f"{path}: sample {key!r} has {member!r} twice")
            members[member] = tar.extractfile(info).read()
    if key is not None:
        yield parse_sample(key, members, str(path))


def samples_to_latent_set(samples: list[LatentSample]) -> LatentSet:
    keys = [s.key for s in samples]
    if len(set(keys)) != len(keys):
        seen: set[str] = set()
        doubled = sorted({k for k in keys if k in seen or seen.add(k)})
        raise ShardError(f"latent shards hold keys more than once: {doubled[:5]}")
    if not samples:
        raise ShardError("no samples in the given shards")
    mean = torch.from_numpy(np.stack([s.mean for s in samples])).float()
    std = torch.from_numpy(np.stack([s.std for s in samples])).float()
    conditions = {name: torch.tensor([encode_condition(name, s.meta.get(field)) for s in samples], dtype=torch.long)
                  for name, field in CONDITION_FIELDS.items()}
    return LatentSet(keys=keys, mean=mean, std=None if not std.any() else std, conditions=conditions)


def read_latent_set(shard_paths: list[Path | str]) -> LatentSet:
    """All samples of the given shards as one LatentSet (float32; std None when every std is zero)."""
    return samples_to_latent_set([sample for path in shard_paths for sample in iter_shard(path)])
