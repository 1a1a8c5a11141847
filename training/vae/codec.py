"""The codec interface shared by the AutoencoderKL and the Haar wavelet, and the JSON spec that names one.

Latents are stored and used *scaled*: z = (posterior_mean - shift_factor) * scaling_factor, so a diffusion
model sees roughly unit variance (METHOD.md §1: SD's `scaling_factor` 0.18215). `std` is the posterior
std times the same factor, so `mean + std * eps` is a sample of the scaled posterior.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import torch

KINDS = ("autoencoder_kl", "haar_wavelet")


class LatentCodec(Protocol):
    encoder_id: str  # names the weights, scaling and compute precision: part of every cache key
    scaling_factor: float
    shift_factor: float
    latent_channels: int
    downsample: int  # image side / latent side
    device: torch.device

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) in [-1, 1] -> scaled posterior (mean, std), each (B, C, H/d, W/d) float32 on the CPU."""
        ...

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents (B, C, h, w) -> images (B, 3, h*d, w*d) in [-1, 1], float32 on the CPU."""
        ...


def best_device(requested: str = "auto") -> torch.device:
    """`auto`: CUDA when present (the codecs then run in bf16), else the CPU (fp32)."""
    if requested != "auto":
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class CodecSpec:
    """Which codec to open: written by the `vae` stage as `codec.json`, read by every stage that encodes/decodes."""

    kind: str  # one of KINDS
    resolution: int  # image side the codec is used at (square images)
    source: str | None = None  # autoencoder_kl: hub id ("stabilityai/sd-vae-ft-ema") or local folder
    subfolder: str | None = None  # hub repos that keep the VAE in a subfolder ("vae" in full SD repos)
    revision: str | None = None  # hub revision (commit) to pin
    wavelet_scale: float = 0.5  # haar_wavelet: scaling_factor of the coefficients

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"codec kind {self.kind!r}: expected one of {KINDS}")
        if self.kind == "autoencoder_kl" and not self.source:
            raise ValueError("codec autoencoder_kl needs `source` (a hub id or a local folder)")

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def read(cls, path: Path) -> CodecSpec:
        """Read `codec.json`; a relative `source` that is a folder beside the file is resolved against it."""
        try:
            spec = cls(**json.loads(Path(path).read_text()))
        except (OSError, TypeError, ValueError) as error:
            raise ValueError(f"{path}: not a codec spec ({error})") from error
        if spec.source and not Path(spec.source).is_absolute() and (Path(path).parent / spec.source).is_dir():
            spec = CodecSpec(**{**asdict(spec), "source": str(Path(path).parent / spec.source)})
        return spec


def open_codec(spec: CodecSpec, device: torch.device | str = "auto") -> LatentCodec:
    from training.vae.haar import HaarCodec
    from training.vae.kl_codec import KLCodec, load_autoencoder

    device = best_device(device) if isinstance(device, str) else device
    if spec.kind == "haar_wavelet":
        return HaarCodec(scale=spec.wavelet_scale, device=device)
    model = load_autoencoder(spec.source, subfolder=spec.subfolder, revision=spec.revision)
    return KLCodec(model, device)
