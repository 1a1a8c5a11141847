"""Per-sample seeds: each sample draws its initial noise and every step's noise from its own generator.

A sample's random numbers then depend on its seed only, not on the batch it was generated in, so any
sample can be regenerated alone from the seed in its provenance (up to floating-point differences of
batched vs single network evaluation). Noise is drawn on the CPU and moved to the device: the same seed
gives the same noise on every device.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch


def sample_seed(base_seed: int, cell: str, index: int) -> int:
    """A 63-bit seed for draw `index` of `cell`: independent across cells and stable across runs."""
    digest = hashlib.sha256(f"{base_seed}:{cell}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


class PerSampleNoise:
    """One torch.Generator per sample; `draw` returns a (B, *shape) tensor, row i from generator i."""

    def __init__(self, seeds: Sequence[int], shape: Sequence[int], device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        self.generators = [torch.Generator("cpu").manual_seed(int(seed)) for seed in seeds]
        self.shape = tuple(shape)
        self.device = torch.device(device)
        self.dtype = dtype

    def draw(self) -> torch.Tensor:
        rows = [torch.randn(self.shape, generator=g, dtype=torch.float32) for g in self.generators]
        return torch.stack(rows).to(device=self.device, dtype=self.dtype)
