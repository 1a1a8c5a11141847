"""Fit a small AutoencoderKL on the demo images: the demo profile's stand-in for a pretrained SD VAE.

Loss: L1 + MSE reconstruction plus a small KL term (SD's first-stage models weight KL by 1e-6; we skip
their LPIPS and GAN terms, which need pretrained networks). After fitting, `scaling_factor` is set to
1 / std of the training latents (the recipe behind SD's 0.18215) and `shift_factor` to their mean (as SD3's
VAE config does), so the scaled training latents have mean 0 and variance 1.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SmallAutoencoderConfig:
    block_out_channels: tuple[int, ...] = (16, 32, 64, 64)  # 4 levels: 64x64 -> 8x8 (downsample 8, like SD)
    layers_per_block: int = 1
    latent_channels: int = 4
    norm_num_groups: int = 8


@dataclass(frozen=True)
class FitSettings:
    steps: int = 300
    batch_size: int = 16
    learning_rate: float = 2e-3
    kl_weight: float = 1e-6
    seed: int = 0
    threads: int | None = 1  # torch intra-op threads while fitting; None: leave torch's setting


@dataclass
class FitHistory:
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def small_autoencoder(config: SmallAutoencoderConfig, resolution: int, seed: int = 0):
    from diffusers import AutoencoderKL

    levels = len(config.block_out_channels)
    torch.manual_seed(seed)
    return AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels, block_out_channels=tuple(config.block_out_channels),
        layers_per_block=config.layers_per_block, latent_channels=config.latent_channels,
        norm_num_groups=config.norm_num_groups, sample_size=resolution, scaling_factor=1.0,
    )


def _augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random flips and 90-degree turns: a dermoscopy image has no canonical orientation."""
    flips = torch.rand(3, generator=generator)
    if flips[0] < 0.5:
        batch = batch.flip(-1)
    if flips[1] < 0.5:
        batch = batch.flip(-2)
    if flips[2] < 0.5:
        batch = batch.transpose(-1, -2)
    return batch


def fit_autoencoder(model, images: torch.Tensor, settings: FitSettings) -> FitHistory:
    """Train `model` in place on images (N, 3, H, W) in [-1, 1]; cosine learning-rate decay, AdamW."""
    previous = torch.get_num_threads()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    try:
        return _fit(model, images, settings)
    finally:
        torch.set_num_threads(previous)


def _fit(model, images: torch.Tensor, settings: FitSettings) -> FitHistory:
    generator = torch.Generator().manual_seed(settings.seed)
    torch.manual_seed(settings.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=0.0)
    warmup = max(1, settings.steps // 20)

    def rate(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, settings.steps - warmup)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    history, started = FitHistory(), time.perf_counter()
    model.train()
    for _ in tqdm(range(settings.steps), desc="fit autoencoder", unit="step", leave=False):
        index = torch.randint(len(images), (min(settings.batch_size, len(images)),), generator=generator)
        batch = _augment(images[index], generator)
        posterior = model.encode(batch).latent_dist
        reconstruction = model.decode(posterior.sample(generator=None)).sample
        loss = ((reconstruction - batch).abs().mean() + (reconstruction - batch).pow(2).mean()
                + settings.kl_weight * posterior.kl().mean())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        history.losses.append(loss.item())
    model.eval()
    history.seconds = time.perf_counter() - started
    log.info("fitted AutoencoderKL: %d steps in %.0f s, final loss %.4f", settings.steps, history.seconds,
             history.losses[-1] if history.losses else float("nan"))
    return history


@torch.inference_mode()
def latent_normalisation(model, images: torch.Tensor, batch_size: int = 64) -> tuple[float, float]:
    """(shift_factor, scaling_factor) = (mean, 1 / std) of the posterior means over `images`."""
    means = torch.cat([model.encode(images[i:i + batch_size]).latent_dist.mean
                       for i in range(0, len(images), batch_size)]).float()
    return float(means.mean()), float(1.0 / means.std())
