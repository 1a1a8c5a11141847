"""Training augmentations of the second paper (diffusion classifiers, Appendix B.2 "Discriminative
Baseline Settings"): random rotation in (-30, 30) degrees, horizontal flip p = 0.5, vertical flip p = 0.5,
Gaussian blur with kernel size 5 and sigma in (0.1, 2). Applied in that order, as a torchvision Compose
of those four transforms would.

Every random choice comes from a `torch.Generator` the caller seeds per sample (from the run seed, the
step and the slot in the batch), so an image's augmentation does not depend on worker processes, on the
global RNG or on where a resumed run restarted.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF


@dataclass(frozen=True)
class AugmentationSettings:
    rotation_degrees: float = 30.0  # B.2: degree range (-30, 30)
    flip_probability: float = 0.5  # B.2: horizontal and vertical flips, p = 0.5 each
    blur_kernel: int = 5  # B.2: kernel size 5
    blur_sigma: tuple[float, float] = (0.1, 2.0)  # B.2: sigma range (0.1, 2)
    blur_probability: float = 1.0  # B.2 blurs every image (with a random sigma)


@dataclass(frozen=True)
class AugmentationDraw:
    angle: float  # degrees, counter-clockwise
    horizontal_flip: bool
    vertical_flip: bool
    blur_sigma: float | None  # None: not blurred


def draw_augmentation(settings: AugmentationSettings, generator: torch.Generator) -> AugmentationDraw:
    """One image's random choices; always five draws from `generator`, whatever the settings."""
    u = torch.rand(5, generator=generator, dtype=torch.float64).tolist()
    low, high = settings.blur_sigma
    return AugmentationDraw(
        angle=(2 * u[0] - 1) * settings.rotation_degrees,
        horizontal_flip=u[1] < settings.flip_probability,
        vertical_flip=u[2] < settings.flip_probability,
        blur_sigma=low + (high - low) * u[4] if u[3] < settings.blur_probability else None,
    )


def apply_augmentation(image: torch.Tensor, draw: AugmentationDraw, kernel: int) -> torch.Tensor:
    """(3, H, W) float image -> augmented copy. Corners uncovered by the rotation are filled with 0 (black)."""
    out = TF.rotate(image, draw.angle, interpolation=InterpolationMode.BILINEAR, fill=0.0)
    if draw.horizontal_flip:
        out = TF.horizontal_flip(out)
    if draw.vertical_flip:
        out = TF.vertical_flip(out)
    if draw.blur_sigma is not None:
        out = TF.gaussian_blur(out, kernel_size=[kernel, kernel], sigma=[draw.blur_sigma, draw.blur_sigma])
    return out


def augment(image: torch.Tensor, settings: AugmentationSettings, generator: torch.Generator) -> torch.Tensor:
    return apply_augmentation(image, draw_augmentation(settings, generator), settings.blur_kernel)
