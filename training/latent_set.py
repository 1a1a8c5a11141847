"""Latents in memory: what the latent shards hold, as tensors a training loop can index by step.

The demo holds a few hundred latents and the real ISIC profile ~58k x 4x32x32 fp16 (~0.5 GB), so the
whole set fits in host memory; indexing it with a permutation that is a function of (seed, epoch)
makes the data order — and so resumed training — exactly reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from training.conditions import CONDITIONS


@dataclass
class LatentSet:
    keys: list[str]  # isic_id (or synthetic sample id) per row
    mean: torch.Tensor  # (N, C, H, W) float32, already multiplied by the VAE scaling_factor
    std: torch.Tensor | None  # (N, C, H, W) posterior std, scaled likewise; None when only the mean was cached
    conditions: dict[str, torch.Tensor]  # name -> (N,) long; values 0..K-1, K (= null) when unknown

    def __len__(self) -> int:
        return len(self.keys)

    def __post_init__(self) -> None:
        n = len(self.keys)
        if self.mean.shape[0] != n or (self.std is not None and self.std.shape != self.mean.shape):
            raise ValueError(f"LatentSet: {n} keys but mean {tuple(self.mean.shape)}, "
                             f"std {None if self.std is None else tuple(self.std.shape)}")
        for name, values in self.conditions.items():
            if name not in CONDITIONS or values.shape != (n,):
                raise ValueError(f"LatentSet: condition {name!r} of shape {tuple(values.shape)}; expected ({n},) "
                                 f"and a name in {sorted(CONDITIONS)}")

    def latents(self, index: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """z0 for rows `index`: a posterior sample mean + std * eps when std is cached, else the mean."""
        mean = self.mean[index]
        if self.std is None or generator is None:
            return mean
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
        return mean + self.std[index] * noise

    def subset(self, index: torch.Tensor) -> LatentSet:
        keep = index.tolist()
        return LatentSet(keys=[self.keys[i] for i in keep], mean=self.mean[index],
                         std=None if self.std is None else self.std[index],
                         conditions={k: v[index] for k, v in self.conditions.items()})
