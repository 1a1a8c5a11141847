"""Precision and recall of a generated distribution by k-NN manifolds (Kynkäänniemi et al. 2019).

Each set's manifold is the union of balls around its feature vectors, of radius the distance to the
k-th nearest other vector of the same set. Precision = share of synthetic vectors inside the real
manifold (are samples realistic?); recall = share of real vectors inside the synthetic manifold (is the
real variety covered?). k = 3 in the paper.
"""

from __future__ import annotations

import torch

CHUNK = 1024  # rows of the distance matrix held at once


def knn_radii(features: torch.Tensor, k: int) -> torch.Tensor:
    """Distance of each row to its k-th nearest other row (the row itself, at distance 0, is skipped)."""
    if features.shape[0] <= k:
        raise ValueError(f"k-NN radii with k={k} need more than {k} vectors, got {features.shape[0]}")
    radii = [torch.cdist(chunk, features).kthvalue(k + 1, dim=1).values for chunk in features.split(CHUNK)]
    return torch.cat(radii)


def inside_manifold(reference: torch.Tensor, radii: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """Boolean per query: within the radius of at least one reference vector."""
    return torch.cat([(torch.cdist(chunk, reference) <= radii[None, :]).any(dim=1) for chunk in queries.split(CHUNK)])


def precision_recall(real: torch.Tensor, synthetic: torch.Tensor, k: int = 3) -> dict[str, float]:
    real, synthetic = real.double(), synthetic.double()
    precision = inside_manifold(real, knn_radii(real, k), synthetic).double().mean()
    recall = inside_manifold(synthetic, knn_radii(synthetic, k), real).double().mean()
    return {"precision": round(float(precision), 6), "recall": round(float(recall), 6), "k": k}
