"""Reconstruction quality: PSNR and SSIM of decode(encode(x)) against x, both in [0, 1]."""

from __future__ import annotations

import torch


def psnr(reference: torch.Tensor, estimate: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR in dB, 10 log10(range^2 / MSE), for (B, C, H, W) batches; inf where MSE is 0."""
    if reference.shape != estimate.shape:
        raise ValueError(f"psnr: shapes differ, {tuple(reference.shape)} vs {tuple(estimate.shape)}")
    mse = (reference.double() - estimate.double()).pow(2).flatten(1).mean(dim=1)
    return (10 * torch.log10(data_range**2 / mse)).float()


def ssim(reference: torch.Tensor, estimate: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5) via pytorch-msssim."""
    from pytorch_msssim import ssim as msssim_ssim

    return msssim_ssim(reference.float(), estimate.float(), data_range=data_range, size_average=False)


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1]."""
    return (images.float() + 1) / 2
