"""The `oversampled` arm: the honest baseline a reviewer asks for before believing synthetic data helps.

It trains on real images only, but sees each under-represented label x skin-tone cell as often as the augmented
classifier does: every cell the generation plan fills with `to_generate` synthetic samples gets `to_generate`
extra copies of its own real images instead (drawn at random with replacement, seeded). If the augmented
classifier beats this arm, the synthetic images add something beyond re-weighting the cells.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from training.downstream.dataset import ImageItem


def oversampled_items(train: list[ImageItem], meta: pd.DataFrame, plan: pd.DataFrame, seed: int) -> list[ImageItem]:
    """The extra copies (not the originals) for `train` (rows described by `meta`: label, skin_tone_group)."""
    missing = [c for c in ("label", "skin_tone_group", "to_generate") if c not in plan.columns]
    if missing:
        raise ValueError(f"generation plan: missing column(s) {missing}; expected the generation_plan stage's table")
    rng = np.random.default_rng(seed)
    by_cell = plan.groupby(["label", "skin_tone_group"], sort=True)["to_generate"].sum()
    extra: list[ImageItem] = []
    for (label, group), count in by_cell.items():
        members = np.flatnonzero(((meta["label"] == label) & (meta["skin_tone_group"] == group)).to_numpy())
        if count <= 0 or len(members) == 0:
            continue
        for j, index in enumerate(rng.choice(members, size=int(count), replace=True)):
            item = train[int(index)]
            extra.append(replace(item, key=f"{item.key}#copy{j}", content=f"{item.content}#copy{j}"))
    return extra
