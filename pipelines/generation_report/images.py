"""The two image sets the report compares: real lesions (one split of the lesions table) and the synthetic shards.

Both are indexed collections with per-image attributes (label, skin_tone_group) that load uint8
(n, S, S, 3) images on demand, so features are computed batch by batch and only the few images a plot
or an MS-SSIM pair needs are held in memory (the real profile has ~58k real and 20-30k synthetic images).
Real images go through the latent shards' image policy (pipelines/latent_shards/preprocess.py: EXIF
orientation, centre square crop, bicubic resize) at the synthetic side S, so both sets are compared as the
VAE saw them.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from pipelines.latent_shards.preprocess import load_images


@dataclass(frozen=True)
class ImageSet:
    name: str
    attributes: pd.DataFrame  # row i describes image i: label, skin_tone_group
    loader: Callable[[Sequence[int]], np.ndarray]

    def __len__(self) -> int:
        return len(self.attributes)

    def load(self, indices: Sequence[int]) -> np.ndarray:
        return self.loader(list(indices))

    def batches(self, indices: Sequence[int], batch_size: int) -> Iterator[np.ndarray]:
        indices = list(indices)
        for start in range(0, len(indices), batch_size):
            yield self.load(indices[start:start + batch_size])


def real_image_set(lesions: pd.DataFrame, data_root: Path, split: str, side: int) -> ImageSet:
    rows = lesions[lesions["split"] == split].reset_index(drop=True)
    paths = [Path(data_root) / p for p in rows["image_path"]]

    def load(indices: Sequence[int]) -> np.ndarray:
        if not indices:
            return np.zeros((0, side, side, 3), np.uint8)
        return load_images([paths[i] for i in indices], side)

    return ImageSet("real", rows[["label", "skin_tone_group"]].astype({"label": int}), load)


def synthetic_image_set(shards: Path) -> ImageSet:
    """Every sample of `shards/*.tar` (the PNG and the attributes of the json member)."""
    index: list[tuple[Path, str]] = []
    records = []
    for tar_path in sorted(Path(shards).glob("*.tar")):
        with tarfile.open(tar_path) as tar:
            for member in tar.getmembers():
                key, _, extension = member.name.partition(".")
                if extension == "json":
                    attributes = json.loads(tar.extractfile(member).read())
                    records.append({"label": int(attributes["label"]),
                                    "skin_tone_group": attributes["skin_tone_group"]})
                    index.append((tar_path, f"{key}.png"))

    def load(indices: Sequence[int]) -> np.ndarray:
        images: dict[int, np.ndarray] = {}
        by_tar: dict[Path, list[int]] = {}
        for i in indices:
            by_tar.setdefault(index[i][0], []).append(i)
        for tar_path, members in by_tar.items():
            with tarfile.open(tar_path) as tar:
                for i in members:
                    payload = tar.extractfile(index[i][1]).read()
                    images[i] = np.asarray(Image.open(io.BytesIO(payload)).convert("RGB"))
        return np.stack([images[i] for i in indices]) if indices else np.zeros((0, 0, 0, 3), np.uint8)

    return ImageSet("synthetic", pd.DataFrame(records, columns=["label", "skin_tone_group"]), load)
