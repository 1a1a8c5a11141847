"""The counterfactual gallery (paper Fig. 4 layout): input, factual, counterfactual, |difference| heat map,
for `per_class` malignant and `per_class` benign test latents, decoded with the codec: those the report's score
ranks most clearly in their class (highest malignant scores, lowest benign ones; ties in test order), where the
model's class effect is strongest and the malignant <-> benign change shows most."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from pipelines.diffusion_classifier_report.params import MALIGNANT
from training.diffusion.schedule import DiffusionSchedule
from training.diffusion_classifier import DiffusionClassifierParams, explain_counterfactual
from training.diffusion_classifier.counterfactual import Decode
from training.diffusion_classifier.denoiser import Denoiser
from training.diffusion_classifier.plots import render_counterfactual_gallery


def gallery_cases(labels: torch.Tensor, per_class: int, score: torch.Tensor | None = None) -> list[int]:
    """Positions of `per_class` malignant latents, then of `per_class` benign ones: the highest / lowest scores
    (stable: ties in test order), or the first ones without a score."""
    score = torch.zeros(labels.shape, dtype=torch.float64) if score is None else score.double()
    malignant = torch.nonzero(labels == MALIGNANT).flatten()
    benign = torch.nonzero(labels != MALIGNANT).flatten()
    malignant = malignant[torch.sort(-score[malignant], stable=True).indices][:per_class]
    benign = benign[torch.sort(score[benign], stable=True).indices][:per_class]
    return [*malignant.tolist(), *benign.tolist()]


def write_gallery(model: Denoiser, latents: torch.Tensor, labels: torch.Tensor, predicted: torch.Tensor,
                  keys: list[str], conditions: dict[str, torch.Tensor], image_ids: list[int],
                  params: DiffusionClassifierParams, decode: Decode, schedule: DiffusionSchedule,
                  per_class: int, device: torch.device, path: Path, score: torch.Tensor | None = None) -> pd.DataFrame:
    """Render the gallery PNG at `path`; returns one row per gallery row (empty, and no PNG, without cases).

    The factual class is the true label, the counterfactual the other class (benign <-> malignant).
    """
    cases = gallery_cases(labels, per_class, score)
    columns = ["row", "image_id", "label", "predicted", "score", "factual_class", "counterfactual_class", "mean_heat"]
    if not cases:
        return pd.DataFrame(columns=columns)
    index = torch.tensor(cases)
    explanation = explain_counterfactual(
        model, latents[index].to(device), labels[index], params, decode, schedule,
        conditions={name: values[index].to(device) for name, values in conditions.items()},
        image_ids=[image_ids[i] for i in cases])
    names = {MALIGNANT: "malignant"}
    titles = [f"{keys[i]}\n{names.get(int(labels[i]), 'benign')}, called {names.get(int(predicted[i]), 'benign')}"
              for i in cases]
    render_counterfactual_gallery(explanation, path, titles=titles)
    return pd.DataFrame({
        "row": range(len(cases)), "image_id": [keys[i] for i in cases], "label": labels[index].tolist(),
        "predicted": predicted[index].tolist(),
        "score": [float("nan")] * len(cases) if score is None else score[index].double().tolist(),
        "factual_class": explanation.factual_class.cpu().tolist(),
        "counterfactual_class": explanation.counterfactual_class.cpu().tolist(),
        "mean_heat": explanation.heatmap.flatten(1).mean(dim=1).tolist()}, columns=columns)
