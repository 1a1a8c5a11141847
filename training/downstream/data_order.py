"""The batches of a run as a pure function of (seed, step), so a resumed run sees the batches it would have.

Items are indexed real first (0 .. R-1), then synthetic (R .. R+S-1). A *stream* walks a pool of n items
epoch by epoch, each epoch in the order of a permutation seeded by (seed, stream name, epoch); the batch of
step s takes the stream's positions [s·k, (s+1)·k), crossing into the next epoch's permutation when needed.
"pooled": one stream over real + synthetic, k = batch size. "fraction": a real stream with k = B − m and a
synthetic stream with k = m (m synthetic images per batch, DownstreamParams.synthetic_fraction).
"""

from __future__ import annotations

import hashlib

import torch


def derived_seed(*keys: int | str) -> int:
    """A 63-bit seed from any keys (seed, step, slot, ...), stable across processes and Python versions."""
    digest = hashlib.sha256(repr(keys).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def generator_for(*keys: int | str) -> torch.Generator:
    return torch.Generator().manual_seed(derived_seed(*keys))


class _Stream:
    def __init__(self, name: str, size: int, per_step: int, offset: int, seed: int) -> None:
        self.name, self.size, self.per_step, self.offset, self.seed = name, size, per_step, offset, seed
        self._cache: dict[int, torch.Tensor] = {}

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch not in self._cache:
            if len(self._cache) > 3:
                self._cache.pop(min(self._cache))
            self._cache[epoch] = torch.randperm(self.size, generator=generator_for("epoch", self.seed, self.name,
                                                                                   epoch))
        return self._cache[epoch]

    def take(self, step: int) -> list[int]:
        positions = range(step * self.per_step, (step + 1) * self.per_step)
        return [self.offset + int(self._permutation(p // self.size)[p % self.size]) for p in positions]


class TrainingOrder:
    def __init__(self, num_real: int, num_synthetic: int, batch_size: int, seed: int,
                 synthetic_per_batch: int | None = None) -> None:
        """`synthetic_per_batch` None: pooled; else that many synthetic images in every batch."""
        if num_real < 1:
            raise ValueError("training order: no real training images")
        self.batch_size, self.seed = batch_size, seed
        if synthetic_per_batch is None or num_synthetic == 0:
            self.streams = [_Stream("pooled", num_real + num_synthetic, batch_size, 0, seed)]
        else:
            if not 0 < synthetic_per_batch < batch_size:
                raise ValueError(f"training order: {synthetic_per_batch} synthetic images per batch of {batch_size}; "
                                 f"expected between 1 and {batch_size - 1}")
            self.streams = [_Stream("real", num_real, batch_size - synthetic_per_batch, 0, seed),
                            _Stream("synthetic", num_synthetic, synthetic_per_batch, num_real, seed)]

    def batch(self, step: int) -> list[int]:
        """Item indices of the batch of optimizer step `step` (0-based)."""
        return [index for stream in self.streams for index in stream.take(step)]

    def augmentation_seed(self, step: int, slot: int) -> int:
        """Seed of the augmentation of the image in position `slot` of step `step`'s batch."""
        return derived_seed("augment", self.seed, step, slot)
