"""Decode every kept image once: bytes hash, size, corruption, and the healthy-skin ITA.

One decode serves all four (at ISIC scale decoding dominates), in worker processes. Large JPEGs are
decoded at reduced size (Pillow's `draft`, DCT scaling) since the skin-tone measurement only needs
~256 px; width/height are the stored image's full size, read before the draft.
"""

from __future__ import annotations

import hashlib
import io
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image, ImageOps
from tqdm import tqdm

MEASURE_SIZE = 256  # pixels on the long side for the skin-tone measurement
# `<_io.BytesIO object at 0x7f...>` in Pillow's messages: an address that changes from run to run
OBJECT_REPR = re.compile(r" ?<[^<>]* at 0x[0-9a-fA-F]+>")


def scan_image(path: Path, min_pixels: int = 200) -> dict:
    """Scan one file; `error` is set (and the rest empty) when it cannot be read or decoded."""
    from pipelines.skin_tone import measure_skin_tone  # numpy-heavy; imported in the worker

    try:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            image.draft("RGB", (MEASURE_SIZE, MEASURE_SIZE))
            image.load()  # raises on truncated / corrupt data
            image = ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        return {"error": describe_error(error, path)}
    image.thumbnail((MEASURE_SIZE, MEASURE_SIZE))
    import numpy as np

    tone = measure_skin_tone(np.asarray(image), min_pixels=min_pixels)
    return {
        "error": None,
        "sha256": hashlib.sha256(data).hexdigest(),
        "width": width,
        "height": height,
        "ita": tone.ita,
        "chardon": tone.chardon,
        "fst_estimate": tone.group,
    }


def describe_error(error: BaseException, path: Path) -> str:
    """A decode error as a reject detail: the same text on every run and machine (no object address,
    no absolute path; the stage prefixes the image's path relative to the data root)."""
    text = OBJECT_REPR.sub("", f"{type(error).__name__}: {error}")
    return text.replace(str(path), path.name)


def scan_images(paths: list[str], data_root: Path, workers: int = 2, min_pixels: int = 200) -> dict[str, dict]:
    """Scan many images (paths relative to the data root) in parallel, with a progress bar."""
    unique = sorted(set(paths))
    files = [data_root / p for p in unique]
    if workers <= 1 or len(files) < 32:
        results = [scan_image(f, min_pixels) for f in tqdm(files, desc="scan images", unit="img", leave=False)]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(tqdm(pool.map(scan_image, files, [min_pixels] * len(files), chunksize=16),
                                total=len(files), desc="scan images", unit="img", leave=False))
    return dict(zip(unique, results, strict=True))
