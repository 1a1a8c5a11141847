"""MS-SSIM diversity: mean MS-SSIM over random pairs of same-class images (lower = more diverse).

pytorch-msssim's `ms_ssim` uses 5 scales with an 11-px Gaussian window and asserts the smaller image side
exceeds (11 - 1) x 2^4 = 160 px. Images of 161 px or more (the real profile's 256 px) go through it
unchanged. Smaller images (the demo) keep the 11-px window (sigma 1.5) and drop the coarsest scales: the
largest L <= 5 with side > 10 x 2^(L-1) (64 px -> 3 scales, 32 px -> 2), the first L of the standard
weights (Wang et al. 2003) renormalised to sum 1; below 21 px single-scale SSIM with the largest odd
window <= 11 that fits. The scales and window used are in the report: values at different settings are
not comparable.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim as library_ms_ssim
from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim

WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # pytorch-msssim's defaults (Wang et al. 2003)
WINDOW, SIGMA = 11, 1.5


def ms_ssim_settings(side: int) -> tuple[int, int]:
    """(scales, window) used for square-ish images whose smaller side is `side` px."""
    for levels in range(5, 0, -1):
        if side > (WINDOW - 1) * 2 ** (levels - 1):
            return levels, WINDOW
    window = side if side % 2 else side - 1
    if window < 3:
        raise ValueError(f"MS-SSIM: images of {side} px are too small (need at least 3 px)")
    return 1, window


def ms_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-pair MS-SSIM of float (B, 3, H, W) images in [0, 1]."""
    levels, window = ms_ssim_settings(min(x.shape[-2:]))
    if levels == 5:
        return library_ms_ssim(x, y, data_range=1.0, size_average=False)
    return multiscale_ssim(x, y, levels, window)


def multiscale_ssim(x: torch.Tensor, y: torch.Tensor, levels: int, window: int) -> torch.Tensor:
    """pytorch-msssim's MS-SSIM recursion with `levels` scales (weights renormalised) and a `window`-px window."""
    weights = x.new_tensor(WEIGHTS[:levels])
    weights = weights / weights.sum()
    win = _fspecial_gauss_1d(window, SIGMA).repeat([x.shape[1], 1, 1, 1])
    factors = []
    for level in range(levels):
        ssim_per_channel, cs = _ssim(x, y, data_range=1.0, win=win, size_average=False)
        if level < levels - 1:  # contrast-structure at each finer scale, full SSIM at the coarsest
            factors.append(torch.relu(cs))
            padding = [s % 2 for s in x.shape[2:]]
            x, y = F.avg_pool2d(x, kernel_size=2, padding=padding), F.avg_pool2d(y, kernel_size=2, padding=padding)
    factors.append(torch.relu(ssim_per_channel))
    return torch.prod(torch.stack(factors) ** weights.view(-1, 1, 1), dim=0).mean(dim=1)


def random_pairs(n: int, pairs: int, generator: np.random.Generator) -> np.ndarray:
    """`pairs` random (i, j), i != j, from n items (fewer when n is small: all n(n-1)/2 at most)."""
    if n < 2:
        return np.zeros((0, 2), dtype=int)
    if pairs >= n * (n - 1) // 2:
        return np.array([(i, j) for i in range(n) for j in range(i + 1, n)])
    first = generator.integers(0, n, pairs)
    second = (first + generator.integers(1, n, pairs)) % n  # never equal to first
    return np.stack([first, second], axis=1)


def pair_ms_ssim(images: np.ndarray, pairs: np.ndarray, batch_size: int = 64) -> float | None:
    """Mean MS-SSIM over `pairs` of uint8 (N, H, W, 3) images."""
    if len(pairs) == 0:
        return None
    values = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        x = torch.from_numpy(images[chunk[:, 0]]).permute(0, 3, 1, 2).float() / 255.0
        y = torch.from_numpy(images[chunk[:, 1]]).permute(0, 3, 1, 2).float() / 255.0
        values.append(ms_ssim(x, y))
    return round(float(torch.cat(values).mean()), 6)
