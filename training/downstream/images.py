"""Where an image's bytes live and how they become the classifier's square input.

Real ISIC JPEGs and external-set images are files on disk; synthetic images are PNG members of WebDataset
tars (pipelines/synthetic_shards). Both are an `ImageSource` (a file, or a byte range of a tar found once by
`tar_members`) and decode through one function, so the classifier sees them alike. The geometry is the one
the latent shards use (pipelines/latent_shards/preprocess.py): EXIF orientation applied, centre crop to the
largest square, one antialiased bicubic resize. Synthetic images are decoded from latents of such crops, so
real and synthetic inputs share their framing.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps


class ImageReadError(ValueError):
    """An image that cannot be read or decoded; the message names its file (and tar member)."""


@dataclass(frozen=True)
class ImageSource:
    path: str  # an image file, or the tar holding it
    member: str | None = None  # tar member name; None for a plain file
    offset: int = 0  # byte offset of the member's data inside the tar
    size: int = 0

    def read_bytes(self) -> bytes:
        try:
            if self.member is None:
                return Path(self.path).read_bytes()
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read(self.size)
        except OSError as error:
            raise ImageReadError(f"{self}: cannot read ({error})") from error
        if len(data) != self.size:
            raise ImageReadError(f"{self}: expected {self.size} bytes at offset {self.offset}, got {len(data)}")
        return data

    def __str__(self) -> str:
        return self.path if self.member is None else f"{self.path}::{self.member}"


def tar_members(path: Path, extension: str) -> dict[str, ImageSource]:
    """WebDataset key -> source of its `<key>.<extension>` member, for every such member of the tar."""
    sources = {}
    with tarfile.open(path, mode="r:") as tar:
        for info in tar:
            key, _, ext = Path(info.name).name.partition(".")
            if ext == extension and info.isfile():
                sources[key] = ImageSource(str(path), info.name, info.offset_data, info.size)
    return sources


def decode_image(source: ImageSource, size: int) -> torch.Tensor:
    """(3, size, size) uint8 RGB: EXIF orientation, centre square crop, bicubic resize."""
    data = source.read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (size, size))  # JPEG: decode at the smallest DCT scale that stays >= size
            image = ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ImageReadError(f"{source}: cannot decode ({type(error).__name__}: {error})") from error
    square = ImageOps.fit(image, (size, size), method=Image.Resampling.BICUBIC, centering=(0.5, 0.5))
    return torch.from_numpy(np.array(square, dtype=np.uint8)).permute(2, 0, 1).contiguous()
