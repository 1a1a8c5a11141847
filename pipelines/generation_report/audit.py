"""Audit samples: what a trained DiT draws when asked for a given list of (label, skin-tone group) conditions.

The synthetic shards follow the generation plan (mostly malignant and darker skin), so they cannot be compared
with held-out real images as they are. The report therefore also draws, from each model it judges (Class-N-Diff
and the DiT baseline alike), samples asked with the conditions of held-out half A (quality.py): the same
label x skin-tone mix as the real images they are compared with. Seeds are fixed, so a re-run draws the same.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from pipelines.synthetic_shards.shard_files import image_to_uint8
from training.conditions import encode
from training.sampling import SamplingParams, sample_latents

AUDIT_SEED_OFFSET = 7_000_000  # audit seeds never coincide with the shards' (seeding.sample_seed derives those)


def draw_audit_samples(model: torch.nn.Module, decode: Callable[[torch.Tensor], torch.Tensor],
                       conditions: pd.DataFrame, sampling: SamplingParams, desc: str = "audit samples") -> np.ndarray:
    """uint8 (N, S, S, 3) images, row i drawn with `conditions` row i (columns label, skin_tone_group)."""
    names = tuple(model.config.conditions)
    shape = (model.config.in_channels, *model.config.input_size)
    values = {"label": conditions["label"].astype(int).tolist(),
              "skin_tone": conditions["skin_tone_group"].astype(str).tolist(),
              "sex": [None] * len(conditions)}
    images = []
    batch = sampling.batch_size
    for start in tqdm(range(0, len(conditions), batch), desc=desc, leave=False):
        stop = min(start + batch, len(conditions))
        cond = {name: torch.tensor([encode(name, v) for v in values[name][start:stop]], dtype=torch.long)
                for name in names}
        seeds = [AUDIT_SEED_OFFSET + sampling.seed * 100_000 + i for i in range(start, stop)]
        latents, _ = sample_latents(model, cond, seeds, shape, sampling)
        with torch.no_grad():
            decoded = decode(latents).detach().float().cpu().numpy()
        images += [image_to_uint8(image) for image in decoded]
    return np.stack(images)


def codec_roundtrip(codec):  # noqa: ANN001, ANN201  (a training.vae codec)
    """uint8 (N, S, S, 3) images -> the codec's reconstructions (encode the posterior mean, decode)."""
    def roundtrip(images: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(images), 64):
            x = torch.from_numpy(np.ascontiguousarray(images[start:start + 64])).permute(0, 3, 1, 2)
            with torch.no_grad():
                decoded = codec.decode(codec.encode(x.float().div(127.5).sub(1.0))[0]).float().numpy()
            out += [image_to_uint8(image) for image in decoded]
        return np.stack(out)

    return roundtrip
