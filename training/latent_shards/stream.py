"""Stream latent shards into training batches: WebDataset reading, shuffle buffer, worker/node splitting.

Two modes:
- one pass (default): shards are shuffled per epoch (the same order on every rank), split across nodes
  (`wds.split_by_node`) then DataLoader workers (`wds.split_by_worker`); each sample is seen once per
  epoch. A worker left without a shard (more workers than shards) simply yields nothing.
- resampled (DDP): every (rank, worker) draws shards with replacement from its own seeded stream and
  yields a fixed number of batches, so all ranks step the same number of times per epoch whatever the
  shard count (WebDataset's recommended way to train under DDP).
Call `set_epoch(epoch)` before each epoch (like DistributedSampler) for a new, reproducible order.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset

from training.conditions import encode as encode_condition
from training.latent_shards.format import npy_array
from training.latent_shards.read import CONDITION_FIELDS
from training.latent_shards.verify import ShardError, verify_shard


@dataclass(frozen=True)
class StreamSettings:
    batch_size: int = 64
    shuffle_buffer: int = 1000  # samples held for shuffling within a worker (0: no sample shuffle)
    seed: int = 0
    resampled: bool = False
    epoch_samples: int | None = None  # resampled mode: samples per rank per epoch (rounded down to batches)
    flip: bool = False  # random horizontal/vertical flips of mean and std together (latent-space augmentation)
    drop_last: bool = False


def _samples_of(url: str) -> Iterator[dict]:
    try:
        yield from wds.tarfile_samples([{"url": url}])
    except Exception as error:  # WebDataset raises tarfile/IO errors; say which shard broke
        raise ShardError(f"{url}: cannot stream shard ({error})") from error


def _decode(raw: dict) -> dict:
    where = f"{raw.get('__url__')}: sample {raw.get('__key__')!r}"
    try:
        meta = json.loads(raw["json"])
        sample = {"key": raw["__key__"], "mean": npy_array(raw["mean.npy"]), "std": npy_array(raw["std.npy"])}
    except KeyError as error:
        raise ShardError(f"{where} lacks member {error}") from error
    for name, field in CONDITION_FIELDS.items():
        sample[name] = encode_condition(name, meta.get(field))
    return sample


def _flip(sample: dict, rng: random.Random) -> dict:
    for axis in (-1, -2):
        if rng.random() < 0.5:
            sample["mean"], sample["std"] = np.flip(sample["mean"], axis), np.flip(sample["std"], axis)
    return sample


def collate(samples: list[dict]) -> dict:
    batch = {"key": [s["key"] for s in samples]}
    for name in ("mean", "std"):
        batch[name] = torch.from_numpy(np.stack([np.ascontiguousarray(s[name]) for s in samples])).float()
    for name in CONDITION_FIELDS:
        batch[name] = torch.tensor([s[name] for s in samples], dtype=torch.long)
    return batch


class LatentStream(IterableDataset):
    """Batches (dicts: key, mean, std, label, skin_tone, sex) from shard URLs or local paths."""

    def __init__(self, shards: list[str | Path], settings: StreamSettings = StreamSettings(), verify: bool = True):
        super().__init__()
        self.urls = [str(s) for s in shards]
        if not self.urls:
            raise ValueError("LatentStream: no shards given")
        if settings.resampled and not settings.epoch_samples:
            raise ValueError("LatentStream: resampled mode needs epoch_samples (samples per rank per epoch)")
        if verify:  # local files: catch a truncated shard now, with its name, not mid-epoch
            for url in self.urls:
                if Path(url).is_file():
                    verify_shard(url)
        self.settings = settings
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _urls(self, rng: random.Random) -> Iterator[str]:
        rank, world, worker, workers = wds.utils.pytorch_worker_info()
        if self.settings.resampled:
            while True:
                yield self.urls[rng.randrange(len(self.urls))]
        order = list(self.urls)
        random.Random(f"{self.settings.seed}/{self.epoch}").shuffle(order)  # same order on every rank
        yield from wds.split_by_worker(wds.split_by_node(iter(order)))

    def _batches_per_worker(self) -> int | None:
        if not self.settings.resampled:
            return None
        _, _, worker, workers = wds.utils.pytorch_worker_info()
        total = self.settings.epoch_samples // self.settings.batch_size
        return total // workers + (1 if worker < total % workers else 0)

    def __iter__(self) -> Iterator[dict]:
        rank, _, worker, _ = wds.utils.pytorch_worker_info()
        rng = random.Random(f"{self.settings.seed}/{self.epoch}/{rank}/{worker}")
        samples = (_decode(raw) for url in self._urls(rng) for raw in _samples_of(url))
        if self.settings.shuffle_buffer > 1:
            samples = wds.shuffle(self.settings.shuffle_buffer, initial=min(100, self.settings.shuffle_buffer),
                                  rng=rng)(samples)
        if self.settings.flip:
            samples = (_flip(sample, rng) for sample in samples)
        limit = self._batches_per_worker()
        batches = wds.batched(self.settings.batch_size, collation_fn=collate,
                              partial=not self.settings.drop_last)(samples)
        for count, batch in enumerate(batches):
            if limit is not None and count >= limit:
                return
            yield batch


def latent_loader(shards: list[str | Path], settings: StreamSettings = StreamSettings(),
                  num_workers: int = 0) -> DataLoader:
    """A DataLoader over `LatentStream` (batching happens in the workers, so batch_size=None here)."""
    return DataLoader(LatentStream(shards, settings), batch_size=None, num_workers=num_workers,
                      persistent_workers=False, pin_memory=torch.cuda.is_available())
