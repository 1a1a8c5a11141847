"""Rendering each planned image file: every distinct image once, re-released copies byte-identical."""

from __future__ import annotations

import io
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from pipelines.demo_data.layouts import DemoImage, write_bytes_atomic
from pipelines.demo_data.params import DemoDataParams
from pipelines.demo_data.render import render_dermoscopy


class RenderingSink:
    """Renders each distinct image once; later copies of it (re-releases) get the same bytes."""

    def __init__(self, root: Path, params: DemoDataParams, corrupt: set[str], missing: set[str]):
        self.root, self.params, self.corrupt, self.missing = root, params, corrupt, missing
        self.first_copy: dict[tuple[int, int, int, str], Path] = {}
        self.unique: set[tuple[int, int, int]] = set()
        self.truth: list[tuple[str, str, int, int, str]] = []
        self.per_folder: Counter[str] = Counter()

    def put(self, image: DemoImage, rel_path: str) -> None:
        if image.isic_id in self.missing:  # quirk: the CSV row stays, the file never existed
            return
        target = self.root / rel_path
        fmt = "PNG" if rel_path.endswith(".png") else "JPEG"
        tag = 2 if image.source == "ddi" else 1  # DDI ids and ISIC numbers are separate key spaces
        key = (tag, image.render_key, image.variant, fmt)
        if image.isic_id in self.corrupt:  # quirk: header intact, scan data cut -> open() works, load() fails
            data = self._encode(image, tag, fmt)
            write_bytes_atomic(target, data[: len(data) // 2])
        elif key in self.first_copy:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.first_copy[key], target)
        else:
            write_bytes_atomic(target, self._encode(image, tag, fmt))
            self.first_copy[key] = target
        self.unique.add(key[:3])
        self.truth.append((rel_path, image.isic_id, image.fitzpatrick, int(image.melanoma), image.diagnosis))
        self.per_folder[rel_path.rsplit("/", 1)[0]] += 1

    def _encode(self, image: DemoImage, tag: int, fmt: str) -> bytes:
        # A child RNG per image from (seed, key space, key): bytes do not depend on the order of writing.
        rng = np.random.default_rng([self.params.seed, tag, image.render_key])
        picture = render_dermoscopy(rng, image.fitzpatrick, image.melanoma, image.size)
        if image.variant:
            picture = near_duplicate(picture)
        buffer = io.BytesIO()
        if fmt == "PNG":
            picture.save(buffer, format="PNG")
        else:
            picture.save(buffer, format="JPEG", quality=self.params.jpeg_quality)
        return buffer.getvalue()


def near_duplicate(picture: Image.Image) -> Image.Image:
    """The second shot of a 2020 duplicate pair: cropped 1 % per side, rescaled, 3 % brighter."""
    width, height = picture.size
    dx, dy = max(1, width // 100), max(1, height // 100)
    cropped = picture.crop((dx, dy, width - dx, height - dy)).resize(
        (width, height), Image.Resampling.BICUBIC
    )
    return ImageEnhance.Brightness(cropped).enhance(1.03)
