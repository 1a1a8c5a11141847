"""External test sets (DDI, ...) as latent splits: their images encoded with the pipeline's codec.

External sets have images but no latent shards, so each image goes through the latent-shard image policy
(pipelines/latent_shards/preprocess.py: EXIF, centre crop, bicubic resize, [-1, 1]) and the codec the
`vae` stage wrote, like the ISIC images behind the shards and like the joint classifier's external
predictions. Each set becomes a `LatentSplit` with the lesions-table columns, so it is voted, scored and
written by the same code as the ISIC test split; its test_set name is its `dataset`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import torch

from pipelines.diffusion_classifier_report.splits import LatentSplit, trial_seed
from pipelines.latent_shards.preprocess import encode_images
from training.conditions import encode as encode_condition
from training.latent_shards.read import CONDITION_FIELDS

log = logging.getLogger(__name__)
EXTERNAL_REQUIRED = ("dataset", "image_id", "image_path", "label", "skin_tone_group", "sex", "age_approx",
                     "anatom_site_general")


def external_meta(rows: pd.DataFrame) -> pd.DataFrame:
    """External-table rows in the lesions-table layout the prediction rows read (rows.LESION_COLUMNS):
    the image id as `isic_id` and the set as the source, as the joint classifier's predictions name it."""
    return pd.DataFrame({
        "isic_id": rows["image_id"].astype(str).to_numpy(), "label": rows["label"].astype(int).to_numpy(),
        "skin_tone_group": rows["skin_tone_group"].to_numpy(), "sex": rows["sex"].to_numpy(),
        "age_approx": rows["age_approx"].to_numpy(), "anatom_site_general": rows["anatom_site_general"].to_numpy(),
        "sources": rows["dataset"].astype(str).to_numpy()})


def external_conditions(rows: pd.DataFrame, condition_names: list[str]) -> dict[str, torch.Tensor]:
    """The model's other condition tokens from the table's columns, encoded as the latent shards encode them."""
    return {name: torch.tensor([encode_condition(name, value) for value in rows[CONDITION_FIELDS[name]]],
                               dtype=torch.long) for name in condition_names}


def check_external_table(table: pd.DataFrame, where: str) -> None:
    missing = [c for c in EXTERNAL_REQUIRED if c not in table.columns]
    if missing:
        raise ValueError(f"{where}: external-sets table lacks column(s) {missing}; expected {list(EXTERNAL_REQUIRED)} "
                         "(the external_sets stage's table)")
    doubled = table[table.duplicated(["dataset", "image_id"], keep=False)]
    if len(doubled):
        first = doubled.iloc[0]
        raise ValueError(f"{where}: image_id {first['image_id']!r} appears {len(doubled)} times in set "
                         f"{first['dataset']!r}; expected one row per (dataset, image_id)")


def load_external_splits(external_sets: Path, data_root: Path, codec, resolution: int, condition_names: list[str],
                         cap: int | None = None, progress: bool = True) -> dict[str, LatentSplit]:
    """test_set name (the `dataset`) -> its split, sets in table order, the first `cap` rows of each when capped."""
    table = pd.read_parquet(external_sets)
    check_external_table(table, str(external_sets))
    splits = {}
    for dataset, rows in table.groupby("dataset", sort=False):
        rows = rows.iloc[:cap] if cap is not None else rows
        latents = encode_images([Path(data_root) / p for p in rows["image_path"]], codec, resolution,
                                progress=progress)
        meta = external_meta(rows)
        splits[str(dataset)] = LatentSplit(
            meta=meta, latents=latents, labels=torch.tensor(meta["label"].to_numpy()),
            conditions=external_conditions(rows, condition_names),
            image_ids=[trial_seed(f"{dataset}/{image_id}") for image_id in meta["isic_id"]])
        log.info("external set %s: %d images encoded to %s latents", dataset, len(rows), tuple(latents.shape[1:]))
    return splits
