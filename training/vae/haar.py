"""Single-level Haar wavelet transform: the weight-free "VAE" of the diffusion-classifier paper.

seeds/002 §3.3 and App. B.3/B.4: "all images are compressed with a single-stage discrete wavelet
transform (DWT) using a Haar wavelet", 3x256x256 -> 12x128x128. The orthonormal Haar basis makes the
transform exactly invertible (each 2x2 block is multiplied by an orthogonal 4x4 matrix of +-1/2).
"""

from __future__ import annotations

import torch


def haar_forward(images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W), H and W even -> (B, 4C, H/2, W/2): channels [LL, LH, HL, HH] per input channel."""
    if images.shape[-1] % 2 or images.shape[-2] % 2:
        raise ValueError(f"haar_forward: height and width must be even, got {tuple(images.shape)}")
    a = images[..., 0::2, 0::2]  # top-left of each 2x2 block
    b = images[..., 0::2, 1::2]  # top-right
    c = images[..., 1::2, 0::2]  # bottom-left
    d = images[..., 1::2, 1::2]  # bottom-right
    bands = ((a + b + c + d) / 2, (a - b + c - d) / 2, (a + b - c - d) / 2, (a - b - c + d) / 2)
    return torch.stack(bands, dim=2).flatten(1, 2)


def haar_inverse(coefficients: torch.Tensor) -> torch.Tensor:
    """Inverse of `haar_forward`: (B, 4C, h, w) -> (B, C, 2h, 2w)."""
    batch, channels4, height, width = coefficients.shape
    if channels4 % 4:
        raise ValueError(f"haar_inverse: channel count must be a multiple of 4, got {channels4}")
    bands = coefficients.view(batch, channels4 // 4, 4, height, width)
    ll, lh, hl, hh = bands.unbind(dim=2)
    images = coefficients.new_empty(batch, channels4 // 4, 2 * height, 2 * width)
    images[..., 0::2, 0::2] = (ll + lh + hl + hh) / 2
    images[..., 0::2, 1::2] = (ll - lh + hl - hh) / 2
    images[..., 1::2, 0::2] = (ll + lh - hl - hh) / 2
    images[..., 1::2, 1::2] = (ll - lh - hl + hh) / 2
    return images


class HaarCodec:
    """The wavelet behind the codec interface; deterministic, so the cached std is zero."""

    latent_channels = 12
    downsample = 2
    shift_factor = 0.0

    def __init__(self, scale: float = 0.5, device: torch.device | str = "cpu"):
        # The LL band of images in [-1, 1] spans [-2, 2]; scale 0.5 brings it back to the image range.
        self.scaling_factor = float(scale)
        self.device = torch.device(device)
        self.encoder_id = f"haar_wavelet-s{self.scaling_factor:g}-fp32"

    @torch.inference_mode()
    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = haar_forward(images.to(self.device, torch.float32)) * self.scaling_factor
        return mean.cpu(), torch.zeros_like(mean, device="cpu")

    @torch.inference_mode()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return haar_inverse(latents.to(self.device, torch.float32) / self.scaling_factor).clamp(-1, 1).cpu()
