"""One dataset interface for every image the downstream classifiers see: real JPEGs, external-set images
and synthetic PNGs from shards alike (an `ImageItem` holds an `ImageSource`, see images.py).

`dataset[i]` is item i for evaluation; `dataset[(i, seed)]` is item i augmented with the generator seeded by
`seed` (augment.py). Both give a float32 (3, S, S) tensor normalised with the backbone's mean/std, and the
label as a float32 scalar.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from training.downstream.augment import AugmentationSettings, augment
from training.downstream.images import ImageSource, decode_image


@dataclass(frozen=True)
class ImageItem:
    key: str  # unique within its set: ISIC id, external image id, or synthetic sample key
    source: ImageSource
    label: int  # 1 = malignant, 0 = benign
    # What identifies the image's bytes (its sha256, or its shard's sha256 + key) for a run's fingerprint;
    # "" = the key alone. Never an absolute path: a moved data root must not restart a finished run.
    content: str = ""


class ImageDataset(Dataset):
    def __init__(self, items: Sequence[ImageItem], image_size: int, mean: Sequence[float], std: Sequence[float],
                 augmentation: AugmentationSettings | None = None, cache: bool = False) -> None:
        self.items = list(items)
        self.image_size = image_size
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.augmentation = augmentation
        self._cache: dict[int, torch.Tensor] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.items)

    @property
    def labels(self) -> torch.Tensor:
        return torch.tensor([item.label for item in self.items], dtype=torch.float32)

    def pixels(self, index: int) -> torch.Tensor:
        """(3, S, S) uint8 of item `index`, decoded once when caching."""
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        image = decode_image(self.items[index].source, self.image_size)
        if self._cache is not None:
            self._cache[index] = image
        return image

    def __getitem__(self, request: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed = (request, None) if isinstance(request, int) else request
        image = self.pixels(index).float().div(255.0)
        if seed is not None and self.augmentation is not None:
            image = augment(image, self.augmentation, torch.Generator().manual_seed(seed))
        image = (image - self.mean) / self.std
        return image, torch.tensor(float(self.items[index].label))
