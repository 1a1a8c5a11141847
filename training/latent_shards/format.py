"""One sample of a latent shard and its byte encoding (the member names and payloads of the tar)."""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass

import numpy as np

DTYPE = "float16"
MEMBERS = ("json", "mean.npy", "std.npy")  # tar order inside a sample (sorted by name)


@dataclass(frozen=True)
class LatentSample:
    key: str  # isic_id; no dots (WebDataset splits the key from the extension at the first dot)
    mean: np.ndarray  # (C, h, w) float16, scaled
    std: np.ndarray  # (C, h, w) float16, scaled
    meta: dict  # label, diagnosis, skin_tone_group, sex, age, site, split, ...

    def __post_init__(self) -> None:
        if "." in self.key or "/" in self.key or not self.key:
            raise ValueError(f"latent sample key {self.key!r}: expected a non-empty id without '.' or '/'")
        if self.mean.shape != self.std.shape or self.mean.dtype != np.float16 or self.std.dtype != np.float16:
            raise ValueError(f"latent sample {self.key}: mean {self.mean.shape} {self.mean.dtype} and std "
                             f"{self.std.shape} {self.std.dtype}; expected equal shapes, both {DTYPE}")


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def npy_array(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def _plain(value: object) -> object:
    """JSON-safe and deterministic: NaN/None -> null, numpy scalars -> Python numbers."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return None
    except ImportError:  # pragma: no cover - pandas is a project dependency
        pass
    return value


def json_bytes(meta: dict) -> bytes:
    return json.dumps({k: _plain(v) for k, v in meta.items()}, sort_keys=True, separators=(",", ":")).encode()


def sample_members(sample: LatentSample) -> list[tuple[str, bytes]]:
    payloads = {"json": json_bytes(sample.meta), "mean.npy": npy_bytes(sample.mean), "std.npy": npy_bytes(sample.std)}
    return [(f"{sample.key}.{member}", payloads[member]) for member in MEMBERS]
