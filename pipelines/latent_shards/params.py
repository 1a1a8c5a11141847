"""Parameters of the `latent_shards` stage (params.yaml key `latent_shards`).

The image resolution and the encoder come from the `vae` stage's `codec.json`, so the two stages cannot
disagree. Demo defaults below; the real profile changes only the check thresholds (see comments).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LatentChecksParams(_Strict):
    # decode(cached mean) vs the preprocessed image. The demo VAE (4x8x8 from 64x64, fitted in ~2 min)
    # reaches ~23-26 dB on the demo images; sd-vae-ft-ema at 256 px is ~27-30 dB: use 24 on real data.
    psnr_min: float = 20.0
    psnr_sample: int = 16  # images per split decoded for the PSNR check
    # Scaled latents should be roughly standard normal (that is what scaling_factor is for). The bounds catch
    # a missing scaling (SD latents unscaled: std ~5) or a doubled one (std ~0.2), not fine drift.
    mean_abs_max: float = 1.0  # |mean over all train latent values|
    std_min: float = 0.3  # std over all train latent values
    std_max: float = 3.0
    seed: int = 0


class LatentShardsParams(_Strict):
    samples_per_shard: int = Field(1000, gt=0)  # ~16 MB per shard at 4x32x32 (mean + std, fp16)
    batch_size: int = Field(64, gt=0)  # images per encoder call (real profile on a GPU: 128-256)
    # Worker processes: they decode (and, on a CPU, also encode with one thread each). Use the core count.
    decode_workers: int = Field(2, ge=1)
    device: str = "auto"  # auto = CUDA (bf16) when present, else CPU (fp32)
    cache: str = "latent_cache"  # content-addressed encodings; NOT a DVC out (DVC would delete it)
    out: str = "latent_shards"
    checks: LatentChecksParams = LatentChecksParams()
