"""The `joint_classifier_predictions` stage: score the Class-N-Diff latent classifier like any classifier.

It classifies latents, so ISIC images are read from the latent shards (val and test splits) and external
test-set images are encoded with the same codec first (same crop/resize policy as the shards). Output:
the predictions tables of `pipelines/fairness/predictions.py`, classifier name `class_n_diff`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipelines.atomic_files import write_parquet
from pipelines.fairness.predictions import validate_predictions
from pipelines.trained_models import TrainedRun, open_codec_of

CLASSIFIER = "class_n_diff"
BATCH = 64


@dataclass(frozen=True)
class JointPredictionsOutputs:
    predictions: Path
    validation_predictions: Path
    summary: dict


def output_paths(out_dir: Path) -> dict[str, Path]:
    return {"predictions": out_dir / "predictions.parquet",
            "validation_predictions": out_dir / "validation_predictions.parquet"}


@torch.no_grad()
def _scores(classifier: torch.nn.Module, latents: torch.Tensor) -> np.ndarray:
    out = [torch.sigmoid(classifier(latents[i:i + BATCH].float())).reshape(-1) for i in range(0, len(latents), BATCH)]
    return torch.cat(out).numpy() if out else np.zeros(0)


def _isic_rows(lesions: pd.DataFrame, shards_dir: Path, split: str, classifier: torch.nn.Module,
               test_set: str) -> pd.DataFrame:
    from training.latent_shards.manifest import shard_paths
    from training.latent_shards.read import read_latent_set

    latents = read_latent_set(shard_paths(shards_dir, split))
    table = lesions.set_index("isic_id").loc[latents.keys]
    return pd.DataFrame({
        "classifier": CLASSIFIER, "test_set": test_set, "image_id": latents.keys,
        "label": table["label"].astype(int).to_numpy(), "score": _scores(classifier, latents.mean),
        "skin_tone_group": table["skin_tone_group"].to_numpy(), "sex": table["sex"].to_numpy(),
        "age_approx": table["age_approx"].to_numpy(), "anatom_site_general": table["anatom_site_general"].to_numpy(),
        "source": table["sources"].str.split("|").str[0].to_numpy()})


def _external_rows(external: pd.DataFrame, data_root: Path, codec, resolution: int,
                   classifier: torch.nn.Module) -> pd.DataFrame:
    from pipelines.latent_shards.preprocess import encode_images

    latents = encode_images([data_root / p for p in external["image_path"]], codec, resolution, batch=BATCH)
    scores = [_scores(classifier, latents)]
    return pd.DataFrame({
        "classifier": CLASSIFIER, "test_set": external["dataset"].to_numpy(),
        "image_id": external["image_id"].to_numpy(),
        "label": external["label"].astype(int).to_numpy(), "score": np.concatenate(scores) if scores else [],
        "skin_tone_group": external["skin_tone_group"].to_numpy(), "sex": external["sex"].to_numpy(),
        "age_approx": external["age_approx"].to_numpy(),
        "anatom_site_general": external["anatom_site_general"].to_numpy(), "source": external["dataset"].to_numpy()})


def run_joint_classifier_predictions(lesions_path: Path, shards_dir: Path, external_sets: Path | None,
                                     vae_dir: Path, run_dir: Path, data_root: Path,
                                     out_dir: Path) -> JointPredictionsOutputs:
    from training.vae import CodecSpec

    classifier = TrainedRun(run_dir).joint_classifier()
    lesions = pd.read_parquet(lesions_path)
    test = [_isic_rows(lesions, shards_dir, "test", classifier, "isic_test")]
    if external_sets is not None and Path(external_sets).is_file():
        external = pd.read_parquet(external_sets)
        if len(external):
            resolution = CodecSpec.read(Path(vae_dir) / "codec.json").resolution
            test.append(_external_rows(external, data_root, open_codec_of(vae_dir, "cpu"), resolution, classifier))
    predictions = validate_predictions(pd.concat(test, ignore_index=True), "joint classifier predictions")
    validation = validate_predictions(_isic_rows(lesions, shards_dir, "val", classifier, "isic_val"),
                                      "joint classifier validation predictions")
    paths = output_paths(out_dir)
    write_parquet(predictions, paths["predictions"])
    write_parquet(validation, paths["validation_predictions"])
    summary = {"classifier": CLASSIFIER, "test_sets": predictions.groupby("test_set").size().to_dict(),
               "validation": len(validation)}
    return JointPredictionsOutputs(summary=summary, **paths)
