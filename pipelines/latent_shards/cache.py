"""The content-addressed latent cache: one encoding per (image sha256, encoder id, resolution + policy).

Layout: `<cache>/<encoder_id>/<resolution>px-<policy>/<sha[:2]>/<sha>.npy`, each file one fp16 array
(2, C, h, w) = (scaled mean, scaled std). The address is a function of the image bytes, the weights
(+ precision) and the preprocessing, so an entry never goes stale: a new image, a new VAE or a new
crop policy simply misses. The cache lives outside the stage's DVC outs (DVC deletes outs before a
run) so a re-run finds it; deleting it only costs re-encoding.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import numpy as np

from pipelines.latent_shards.preprocess import POLICY

SHA256 = re.compile(r"^[0-9a-f]{64}$")


class LatentCache:
    def __init__(self, root: Path, encoder_id: str, resolution: int, policy: str = POLICY):
        self.folder = Path(root) / encoder_id / f"{resolution}px-{policy}"

    def path(self, image_sha256: str) -> Path:
        if not SHA256.match(image_sha256 or ""):
            raise ValueError(f"latent cache: {image_sha256!r} is not a sha256 hex digest")
        return self.folder / image_sha256[:2] / f"{image_sha256}.npy"

    def __contains__(self, image_sha256: str) -> bool:
        return self.path(image_sha256).is_file()

    def get(self, image_sha256: str) -> tuple[np.ndarray, np.ndarray]:
        path = self.path(image_sha256)
        try:
            entry = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise ValueError(f"{path}: unreadable latent cache entry ({error}); delete it to re-encode") from error
        if entry.ndim != 4 or entry.shape[0] != 2 or entry.dtype != np.float16:
            raise ValueError(f"{path}: cache entry {entry.shape} {entry.dtype}; expected (2, C, h, w) float16")
        return entry[0], entry[1]

    def put(self, image_sha256: str, mean: np.ndarray, std: np.ndarray) -> None:
        """Store atomically (temp file + rename): a crash never leaves a partial entry that looks valid."""
        path = self.path(image_sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as file:
                np.save(file, np.stack([mean, std]).astype(np.float16), allow_pickle=False)
            os.replace(temp, path)
        finally:
            if os.path.exists(temp):
                os.unlink(temp)
