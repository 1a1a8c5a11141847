"""Synthetic samples in the latent-shard format (training/latent_shards), plus the decoded image.

One sample = the real shards' three members, `<key>.json` (label, skin_tone_group, sex, split
"synthetic", provenance), `<key>.mean.npy` (the fp16 latent, scaled like the real latents) and
`<key>.std.npy` (zeros: a generated latent has no posterior spread; the reader then leaves std None),
followed by `<key>.png` (the decoded image), which the latent readers ignore. The tar headers are
fixed like the real writer's (mtime 0, owner 0, mode 644, ustar), so a shard's sha256 depends on its
content only and a resumed run that regenerates a shard writes the same bytes.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pipelines.atomic_files import atomic_path
from training.latent_shards.format import LatentSample, npy_array, sample_members
from training.latent_shards.verify import verify_shard


@dataclass(frozen=True)
class SyntheticSample:
    key: str  # WebDataset key: no dots (they separate the key from the extension)
    latent: np.ndarray  # (C, H, W) float16
    attributes: dict  # label, skin_tone_group, sex, split, synthetic, provenance
    image: np.ndarray  # (H, W, 3) uint8

    def members(self) -> list[tuple[str, bytes]]:
        latent = self.latent.astype(np.float16)
        png = io.BytesIO()
        Image.fromarray(self.image).save(png, format="PNG")
        real_format = LatentSample(key=self.key, mean=latent, std=np.zeros_like(latent), meta=self.attributes)
        return [*sample_members(real_format), (f"{self.key}.png", png.getvalue())]


def image_to_uint8(image: np.ndarray) -> np.ndarray:
    """(3, H, W) float in [-1, 1] -> (H, W, 3) uint8."""
    return np.clip(np.rint((image.transpose(1, 2, 0) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def write_shard(path: Path, samples: list[SyntheticSample]) -> Path:
    with atomic_path(path) as temp, tarfile.open(temp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for sample in samples:
            for name, payload in sample.members():
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(payload), 0, 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(payload))
    return path


def read_shard(path: Path) -> list[SyntheticSample]:
    """The samples of one shard, in order (PNG decoded to uint8); verifies the shard is whole first."""
    verify_shard(path)
    grouped: dict[str, dict[str, bytes]] = {}
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            key, _, extension = member.name.partition(".")
            grouped.setdefault(key, {})[extension] = tar.extractfile(member).read()
    samples = []
    for key, files in grouped.items():
        missing = {"json", "mean.npy", "png"} - set(files)
        if missing:
            raise ValueError(f"{path}: sample {key!r} lacks {sorted(missing)}")
        samples.append(SyntheticSample(key=key, latent=npy_array(files["mean.npy"]),
                                       attributes=json.loads(files["json"]),
                                       image=np.asarray(Image.open(io.BytesIO(files["png"])).convert("RGB"))))
    return samples
