"""Scores of a classifier on a dataset (no augmentation, eval mode) and the validation AUC."""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.utils.data import DataLoader

from training.downstream.dataset import ImageDataset


@torch.no_grad()
def predict_scores(model: nn.Module, dataset: ImageDataset, batch_size: int, device: torch.device | str = "cpu",
                   num_workers: int = 0) -> np.ndarray:
    """P(malignant) of every item, in dataset order (float64)."""
    was_training = model.training
    model.eval()
    scores = []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    for images, _ in loader:
        scores.append(torch.sigmoid(model(images.to(device)).float().reshape(-1)).cpu())
    model.train(was_training)
    return torch.cat(scores).double().numpy() if scores else np.zeros(0)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC, NaN when the labels hold a single class."""
    labels = np.asarray(labels).astype(int)
    if len(np.unique(labels)) < 2:
        return math.nan
    return float(roc_auc_score(labels, scores))
