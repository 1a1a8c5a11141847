"""The diffusion classifier's votes as rows: the fairness predictions table and the per-image votes table.

score = the tuned score in [0, 1] (training/diffusion_classifier/decision.py: the malignant vote share, or the
error gap through sigmoid(gap / validation SD)), a value the fairness report can threshold like any classifier's
probability; subgroup columns come from the lesions table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.diffusion_classifier_report.params import MALIGNANT
from pipelines.fairness.predictions import PREDICTION_COLUMNS, validate_predictions
from training.diffusion_classifier import DiffusionClassification
from training.diffusion_classifier.decision import Decision

CLASSIFIER = "diffusion_classifier"
LESION_COLUMNS = ("isic_id", "label", "skin_tone_group", "sex", "age_approx", "anatom_site_general", "sources")


def lesion_rows(lesions: pd.DataFrame, keys: list[str], where: str) -> pd.DataFrame:
    """The lesions-table rows of `keys`, in their order; names the ids the table lacks."""
    missing_columns = [c for c in LESION_COLUMNS if c not in lesions.columns]
    if missing_columns:
        raise ValueError(f"{where}: lesions table lacks column(s) {missing_columns}; expected {list(LESION_COLUMNS)}")
    table = lesions.drop_duplicates("isic_id").set_index("isic_id")
    absent = [k for k in keys if k not in table.index]
    if absent:
        raise ValueError(f"{where}: {len(absent)} latent key(s) not in the lesions table, e.g. {absent[:5]}; "
                         "expected every shard key to be an isic_id of the table the shards were built from")
    return table.loc[keys].reset_index()


def malignant_share(result: DiffusionClassification) -> np.ndarray:
    """(n,) fraction of each image's computed trials won by the malignant class."""
    column = result.classes.index(MALIGNANT)
    votes = result.votes.double()
    return (votes[:, column] / votes.sum(dim=1)).numpy()


def prediction_rows(score: np.ndarray, meta: pd.DataFrame, test_set: str) -> pd.DataFrame:
    """Rows of the fairness predictions table (pipelines/fairness/predictions.py) with `score` in [0, 1] per
    image of `meta`, validated."""
    frame = pd.DataFrame({
        "classifier": CLASSIFIER, "test_set": test_set, "image_id": meta["isic_id"].to_numpy(),
        "label": meta["label"].astype(int).to_numpy(), "score": np.asarray(score, dtype=np.float64),
        "skin_tone_group": meta["skin_tone_group"].to_numpy(), "sex": meta["sex"].to_numpy(),
        "age_approx": meta["age_approx"].to_numpy(), "anatom_site_general": meta["anatom_site_general"].to_numpy(),
        # the first source an image came from, as the other classifiers' tables name it
        "source": meta["sources"].astype(str).str.split("|").str[0].to_numpy()})
    return validate_predictions(frame.loc[:, list(PREDICTION_COLUMNS)], f"{CLASSIFIER} {test_set} predictions")


def vote_rows(result: DiffusionClassification, meta: pd.DataFrame, test_set: str,
              decision: Decision | None = None, score: np.ndarray | None = None) -> pd.DataFrame:
    """One row per image: votes per class, the plain vote's decision (`predicted`), its uncertainty and its cost;
    with `decision`, the report's score and its reweighted decision (`decision`, `confidence`,
    `uncertainty_bits`; decision.py)."""
    frame = result.to_frame(list(meta["isic_id"])).rename(columns={"key": "image_id"})
    frame.insert(0, "test_set", test_set)
    frame.insert(1, "classifier", CLASSIFIER)
    frame["label"] = meta["label"].astype(int).to_numpy()
    frame["malignant_vote_share"] = malignant_share(result)
    if decision is not None:
        frame["score"] = np.asarray(score, dtype=np.float64)
        frame["decision"] = decision.positive
        frame["confidence"] = decision.confidence
        frame["uncertainty_bits"] = decision.uncertainty_bits
    return frame
