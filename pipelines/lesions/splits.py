"""Train/val/test splits grouped by patient and stratified by label x skin-tone group.

Grouping: every image of a patient (else of a lesion, else the image alone) lands in one split, so no
patient is in two splits (ISIC 2020 has ~16 images per patient; ISIC 2019's HAM lesions several).
Stratification: each group gets the stratum (its max label, its most common skin-tone group); within a
stratum groups are dealt, in a seeded random order, to the split furthest behind its target share of
images. Groups holding an id of a forced-test source (e.g. an official test set) go to test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")


def group_keys(lesions: pd.DataFrame) -> pd.Series:
    """patient_id, else lesion_id, else the image id — prefixed so the namespaces never collide."""
    keys = "image:" + lesions["isic_id"].astype(str)
    keys = keys.where(lesions["lesion_id"].isna(), "lesion:" + lesions["lesion_id"].astype(str))
    return keys.where(lesions["patient_id"].isna(), "patient:" + lesions["patient_id"].astype(str))


def assign_splits(
    lesions: pd.DataFrame,
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    forced_test: pd.Series | None = None,
) -> pd.Series:
    """The split of every row of `lesions` (needs isic_id, patient_id, lesion_id, label, skin_tone_group)."""
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError(f"split fractions val={val_fraction}, test={test_fraction}: each in [0,1), sum < 1")
    targets = {"train": 1 - val_fraction - test_fraction, "val": val_fraction, "test": test_fraction}
    frame = pd.DataFrame({"group": group_keys(lesions), "label": lesions["label"].astype(int),
                          "tone": lesions["skin_tone_group"].fillna("unknown")})
    frame["forced"] = False if forced_test is None else forced_test.to_numpy()
    groups = frame.groupby("group", sort=True).agg(
        size=("label", "size"), label=("label", "max"), tone=("tone", lambda t: t.mode().iloc[0]),
        forced=("forced", "any"))
    rng = np.random.default_rng(seed)
    split_of: dict[str, str] = {g: "test" for g in groups.index[groups["forced"]]}
    for _, stratum in groups[~groups["forced"]].groupby(["label", "tone"], sort=True):
        order = stratum.index.to_numpy()[rng.permutation(len(stratum))]
        counts = dict.fromkeys(SPLITS, 0)
        for group in order:
            size = int(stratum.at[group, "size"])
            total = sum(counts.values()) + size
            split = max(SPLITS, key=lambda s: targets[s] * total - counts[s])
            counts[split] += size
            split_of[group] = split
    return frame["group"].map(split_of).rename("split")
