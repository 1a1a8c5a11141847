"""Fréchet distance between Gaussian fits of two feature sets (Heusel et al. 2017), any feature network.

FID = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)). tr((S1 S2)^(1/2)) is computed as the trace of the
square root of the symmetric PSD matrix S1^(1/2) S2 S1^(1/2) (same eigenvalues), in float64, which stays real
when there are fewer samples than features (singular covariances). Covariances are unbiased (N - 1), as
in torchmetrics and pytorch-fid.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn


@torch.no_grad()
def extract_features(network: nn.Module, batches: Iterable[np.ndarray],
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """(N, D) float64 features of uint8 (B, H, W, 3) batches; the network gets float (B, 3, H, W) in [-1, 1]."""
    network.eval()
    out = []
    for batch in batches:
        images = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
        features = network(images.to(device))
        out.append(features.reshape(features.shape[0], -1).double().cpu())
    return torch.cat(out) if out else torch.zeros(0, 0, dtype=torch.float64)


def gaussian_fit(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if features.shape[0] < 2:
        raise ValueError(f"a Gaussian fit needs at least 2 feature vectors, got {features.shape[0]}")
    features = features.double()
    mu = features.mean(0)
    centered = features - mu
    return mu, centered.T @ centered / (features.shape[0] - 1)


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> float:
    root = _psd_sqrt(sigma1)
    middle = root @ sigma2 @ root
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    return float((mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt)


def fid(real: torch.Tensor, synthetic: torch.Tensor) -> float:
    return frechet_distance(*gaussian_fit(real), *gaussian_fit(synthetic))


def fid_at_counts(real: torch.Tensor, synthetic: torch.Tensor, counts: list[int], seed: int) -> list[dict]:
    """FID of `counts` random synthetic samples each (capped by what exists, duplicates dropped) vs all real."""
    rows, seen = [], set()
    generator = torch.Generator().manual_seed(seed)
    for requested in counts:
        n = min(requested, synthetic.shape[0])
        if n in seen or n < 2 or real.shape[0] < 2:
            continue
        seen.add(n)
        subset = torch.randperm(synthetic.shape[0], generator=generator)[:n]
        rows.append({"requested": requested, "n_synthetic": n, "n_real": int(real.shape[0]),
                     "fid": round(fid(real, synthetic[subset]), 6)})
    return rows
