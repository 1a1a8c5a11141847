"""The latents the report classifies, with what it needs beside them: one `LatentSplit` per test set.

ISIC splits are read from the latent shards and joined to the lesions table; external sets (external.py)
are encoded from their images and laid out the same way, so every test set goes through the same code.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from pipelines.diffusion_classifier_report.rows import lesion_rows


@dataclass(frozen=True)
class LatentSplit:
    """One test set's latents with what the report needs beside them."""

    meta: pd.DataFrame  # rows in latent order, columns rows.LESION_COLUMNS (isic_id = the image id of the set)
    latents: torch.Tensor  # (n, C, H, W)
    labels: torch.Tensor  # (n,) 0 benign / 1 malignant
    conditions: dict[str, torch.Tensor]  # the model's other condition tokens (skin_tone, sex), unchanged per class
    image_ids: list[int]  # seeds of each latent's trials: crc32 of its key, so a cap or order changes nothing

    @property
    def keys(self) -> list[str]:
        return list(self.meta["isic_id"])


def trial_seed(key: str) -> int:
    """The seed of an image's (eps, t) trials: a function of its key only."""
    return zlib.crc32(key.encode())


def load_split(shards_dir: Path, split: str, lesions: pd.DataFrame, condition_names: list[str],
               cap: int | None = None) -> LatentSplit:
    """The latents of `split` (the first `cap` in manifest order when capped) joined to the lesions table."""
    from training.latent_shards.manifest import shard_paths
    from training.latent_shards.read import read_latent_set

    latent_set = read_latent_set(shard_paths(shards_dir, split))
    if cap is not None and cap < len(latent_set):
        latent_set = latent_set.subset(torch.arange(cap))
    meta = lesion_rows(lesions, latent_set.keys, f"{shards_dir} split {split!r}")
    return LatentSplit(meta=meta, latents=latent_set.mean, labels=torch.tensor(meta["label"].astype(int).to_numpy()),
                       conditions={name: latent_set.conditions[name] for name in condition_names},
                       image_ids=[trial_seed(key) for key in latent_set.keys])
