"""The image policy: how a stored image becomes the VAE's square input (docs/latents.md).

1. EXIF orientation applied (ISIC 2020 phone-era JPEGs carry rotation tags).
2. JPEGs decoded at reduced size: Pillow's `draft` picks the largest DCT scale 1/2, 1/4 or 1/8 that keeps
   both sides >= the target, so a 6000x4000 JPEG is decoded as 750x500 for a 256 target: ~8x less work
   and no aliasing (the DCT scaling is itself a low-pass).
3. Centre crop to the largest square (dermoscopy centres the lesion), then one antialiased bicubic
   resize to resolution x resolution.
Kept free of torch so decoding worker processes start fast.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps

if TYPE_CHECKING:
    import torch

POLICY = "exif-draft-centercrop-bicubic-v1"  # part of every cache key: change it when the policy changes


class ImageDecodeError(ValueError):
    """An image that cannot be read or decoded, or whose bytes no longer match the table's sha256."""


def load_image(path: Path, resolution: int, expected_sha256: str | None = None) -> np.ndarray:
    """(resolution, resolution, 3) uint8 RGB by the policy above; checks the bytes against `expected_sha256`."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ImageDecodeError(f"{path}: cannot read ({error})") from error
    if expected_sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected_sha256:
            raise ImageDecodeError(f"{path}: sha256 {actual[:12]}... differs from the lesions table's "
                                   f"{expected_sha256[:12]}...: the image changed after the lesions stage ran")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (resolution, resolution))
            image = ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ImageDecodeError(f"{path}: cannot decode ({type(error).__name__}: {error})") from error
    square = ImageOps.fit(image, (resolution, resolution), method=Image.Resampling.BICUBIC, centering=(0.5, 0.5))
    return np.asarray(square, dtype=np.uint8)


def load_image_full(path: Path, resolution: int) -> np.ndarray:
    """The same crop/resize without the reduced-size decoding: the naive baseline of the benchmark."""
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image).convert("RGB")
    square = ImageOps.fit(image, (resolution, resolution), method=Image.Resampling.BICUBIC, centering=(0.5, 0.5))
    return np.asarray(square, dtype=np.uint8)


def load_images(paths: list[Path], resolution: int, expected_sha256: list[str | None] | None = None) -> np.ndarray:
    """A chunk of images as (N, res, res, 3) uint8: the unit of work of one decoding worker task."""
    hashes = expected_sha256 if expected_sha256 is not None else [None] * len(paths)
    return np.stack([load_image(p, resolution, h) for p, h in zip(paths, hashes, strict=True)])


def to_tensor(images: np.ndarray):
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 in [-1, 1] (METHOD.md §1)."""
    import torch

    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def to_uint8(images) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def encode_images(paths: list[Path], codec, resolution: int, batch: int = 64,
                  progress: bool = True) -> torch.Tensor:
    """(n, C, h, w) scaled posterior means of the images at `paths`, by the latent shards' image policy:
    what the external test sets (no shards of their own) are classified on."""
    import torch
    from tqdm import tqdm

    means = []
    for start in tqdm(range(0, len(paths), batch), desc="encoding images", unit="batch",
                      disable=not progress, leave=False):
        mean, _ = codec.encode(to_tensor(load_images(paths[start:start + batch], resolution)))
        means.append(mean.float().cpu())
    if not means:
        raise ValueError("encode_images: no image paths given")
    return torch.cat(means)
