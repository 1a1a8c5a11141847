"""Parameters of the `vae` stage (params.yaml key `vae`): which codec, or how to fit the demo one.

Demo profile (defaults): fit a small AutoencoderKL, 64x64 images -> 4x8x8 latents.
Real profile (METHOD.md §1):
    vae: {kind: autoencoder_kl, pretrained: stabilityai/sd-vae-ft-ema, resolution: 256}
    -> 4x32x32 latents, scaling_factor 0.18215 from the model's config (sd-vae-ft-mse is the option).
Weight-free option (seeds/002 §3.3): {kind: haar_wavelet, resolution: 256} -> 12x128x128.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VaeFitParams(_Strict):
    """The small AutoencoderKL fitted when no pretrained VAE is configured (training/vae/fit.py)."""

    block_out_channels: tuple[int, ...] = (16, 32, 64, 64)  # 4 levels -> downsample 8 (as SD's VAE)
    layers_per_block: int = 1
    latent_channels: int = 4  # as SD's VAE
    norm_num_groups: int = 8
    steps: int = Field(300, ge=1)  # 0.6 CPU-s per step with 1 thread: ~3 min
    batch_size: int = Field(16, ge=1)
    learning_rate: float = 2e-3
    kl_weight: float = 1e-6  # SD first-stage models' KL weight
    seed: int = 0
    # Intra-op threads while fitting. Measured on this project's shared 2-core machine (batch 16, 64 px):
    # 1 thread 0.9 s/step, 2 threads 2.5-4.3 s/step when other processes share the cores (spin-waiting);
    # uncontended, 2 threads ~0.35 s/step. null: torch's default. Re-measured 2026-12-06: the demo's 200 steps on
    # 2 threads took 7 min 56 s while other jobs shared the cores (95 s on 1 thread): 1 stays the default.
    threads: int | None = 1


class VaeParams(_Strict):
    kind: Literal["autoencoder_kl", "haar_wavelet"] = "autoencoder_kl"
    # Hub id or local folder of a diffusers AutoencoderKL (a relative folder is looked up under the data
    # root first, then the working directory; anything else is a hub id). None: fit one on the train split.
    pretrained: str | None = None
    subfolder: str | None = None  # e.g. "vae" for a full Stable Diffusion repo
    revision: str | None = None  # pin a hub commit
    resolution: int = Field(64, ge=8)  # real profile: 256
    wavelet_scale: float = 0.5  # haar_wavelet only: maps the LL band back to [-1, 1]
    fit: VaeFitParams = VaeFitParams()
    eval_images: int = Field(32, ge=1)  # held-out (val split) images for PSNR/SSIM and the grid
    decode_workers: int = Field(2, ge=1)
    device: str = "auto"
    out: str = "vae"
