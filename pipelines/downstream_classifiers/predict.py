"""A trained classifier's scores on a test set, as rows of the predictions table (pipelines/fairness/predictions.py)."""

from __future__ import annotations

import pandas as pd
import torch

from pipelines.downstream_classifiers.sources import META_COLUMNS, TestSet
from pipelines.fairness.predictions import PREDICTION_COLUMNS
from training.downstream.dataset import ImageDataset
from training.downstream.evaluate import predict_scores
from training.downstream.model import ClassifierConfig


def prediction_frame(model: torch.nn.Module, config: ClassifierConfig, classifier: str, test_set: TestSet,
                     batch_size: int, device: torch.device | str = "cpu", num_workers: int = 0) -> pd.DataFrame:
    """One row per image of `test_set`: its subgroup columns and the classifier's P(malignant)."""
    dataset = ImageDataset(test_set.items, config.image_size, config.mean, config.std)
    scores = predict_scores(model, dataset, batch_size, device, num_workers)
    frame = test_set.meta.loc[:, list(META_COLUMNS)].reset_index(drop=True)
    frame = frame.assign(classifier=classifier, test_set=test_set.name, score=scores)
    return frame.loc[:, list(PREDICTION_COLUMNS)]
