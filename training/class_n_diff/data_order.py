"""The data order of a run as a pure function of (seed, step): resumed training sees the same batches.

Global sample position p = step · batch + i runs through epoch e = p // N in the order of a permutation
seeded by (seed, e); a batch that crosses an epoch boundary takes the end of one permutation and the
start of the next. Micro-batches (gradient accumulation) and DDP ranks take consecutive slices of the
global batch, so every sample of an epoch is seen once whatever the number of processes.
"""

from __future__ import annotations

import hashlib

import torch


def derived_seed(*keys: int | str) -> int:
    """A 63-bit seed from any keys (seed, step, rank, ...), stable across processes and Python versions."""
    digest = hashlib.sha256(repr(keys).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def generator_for(*keys: int | str) -> torch.Generator:
    return torch.Generator().manual_seed(derived_seed(*keys))


class DataOrder:
    def __init__(self, num_samples: int, batch_size: int, seed: int) -> None:
        if num_samples < 1:
            raise ValueError("DataOrder: the latent set is empty")
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self._permutations: dict[int, torch.Tensor] = {}

    def permutation(self, epoch: int) -> torch.Tensor:
        if epoch not in self._permutations:
            if len(self._permutations) > 4:
                self._permutations.pop(min(self._permutations))
            self._permutations[epoch] = torch.randperm(self.num_samples, generator=generator_for("epoch", self.seed,
                                                                                                  epoch))
        return self._permutations[epoch]

    def global_batch(self, step: int) -> torch.Tensor:
        """Row indices of the whole batch of optimizer step `step` (0-based)."""
        positions = torch.arange(step * self.batch_size, (step + 1) * self.batch_size)
        epochs = positions // self.num_samples
        out = torch.empty_like(positions)
        for epoch in epochs.unique().tolist():
            mask = epochs == epoch
            out[mask] = self.permutation(epoch)[positions[mask] % self.num_samples]
        return out

    def micro_batch(self, step: int, micro: int, rank: int, grad_accum: int, world_size: int) -> torch.Tensor:
        size = self.batch_size // (grad_accum * world_size)
        start = (micro * world_size + rank) * size
        return self.global_batch(step)[start:start + size]
