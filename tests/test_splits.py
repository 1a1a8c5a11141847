"""Splits: a group's split depends on (seed, group key) alone, and is unbiased on the real ISIC 2019+2020 table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.lesions.readers import read_source
from pipelines.lesions.splits import (
    TOLERANCE_STANDARD_ERRORS,
    assign_splits,
    group_keys,
    label_rate_standard_error,
)
from tests.isic_layouts import SHARED, stage_layout

FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}


def synthetic_lesions(n: int, seed: int = 0) -> pd.DataFrame:
    """n images: ISIC 2020-like patients (1-40 images), 2019-like lesions (1-4 images), lone images."""
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    while len(rows) < n:
        kind = rng.choice(["patient", "lesion", "image"], p=[0.4, 0.4, 0.2])
        size = {"patient": int(rng.integers(1, 41)), "lesion": int(rng.integers(1, 5)), "image": 1}[kind]
        group = f"I{kind[0].upper()}_{len(rows):07d}"
        for _ in range(min(size, n - len(rows))):
            rows.append({"isic_id": f"ISIC_{len(rows):07d}", "patient_id": group if kind == "patient" else None,
                         "lesion_id": group if kind == "lesion" else None, "label": int(rng.random() < 0.1),
                         "skin_tone_group": "A"})
    return pd.DataFrame(rows)


def splits(lesions: pd.DataFrame, seed: int = 0, **fractions: float) -> pd.Series:
    kwargs = {"val_fraction": 0.2, "test_fraction": 0.2} | fractions
    return assign_splits(lesions, seed=seed, **kwargs).set_axis(lesions["isic_id"])


def test_adding_or_removing_images_moves_no_other_image():
    lesions = synthetic_lesions(2000)
    before = splits(lesions)
    added_alone = pd.concat([lesions, pd.DataFrame([{"isic_id": "ISIC_9000000", "patient_id": None,
                                                     "lesion_id": None, "label": 1, "skin_tone_group": "C"}])])
    a_patient = lesions["patient_id"].dropna().iloc[0]
    added_to_patient = pd.concat([lesions, pd.DataFrame([{"isic_id": "ISIC_9000001", "patient_id": a_patient,
                                                          "lesion_id": None, "label": 1, "skin_tone_group": "C"}])])
    removed = lesions.sample(n=150, random_state=1)
    kept = lesions.drop(index=removed.index)
    for changed in (added_alone, added_to_patient, kept):
        after = splits(changed.reset_index(drop=True))
        common = before.index.intersection(after.index)
        assert len(common) >= 1850 and (after[common] != before[common]).sum() == 0
    # the image added to a patient joins that patient's split
    assert splits(added_to_patient.reset_index(drop=True))["ISIC_9000001"] == before[
        lesions.loc[lesions["patient_id"] == a_patient, "isic_id"].iloc[0]]


def test_a_group_never_spans_two_splits_and_fractions_hold():
    lesions = synthetic_lesions(2000)
    split = splits(lesions).to_numpy()
    assert (pd.Series(split).groupby(group_keys(lesions).to_numpy()).nunique() == 1).all()
    # by groups: each split's share of groups is within 4 binomial standard errors of its fraction
    per_group = pd.Series(split).groupby(group_keys(lesions).to_numpy()).first()
    for name, fraction in FRACTIONS.items():
        share = (per_group == name).mean()
        assert abs(share - fraction) < 4 * np.sqrt(fraction * (1 - fraction) / len(per_group)), (name, share)


def test_raising_val_fraction_only_moves_train_to_val_and_keeps_test():
    lesions = synthetic_lesions(2000)
    before, after = splits(lesions), splits(lesions, val_fraction=0.3)
    moved = before != after
    assert moved.sum() > 0
    assert set(before[moved]) == {"train"} and set(after[moved]) == {"val"}
    assert (before == "test").equals(after == "test")
    assert (splits(lesions, seed=1) != before).mean() > 0.3  # the seed re-draws


def test_forced_test_groups_go_to_test_whole():
    lesions = synthetic_lesions(500)
    patient = lesions["patient_id"].dropna().iloc[0]
    forced = pd.Series(False, index=lesions.index)
    forced[lesions.index[lesions["patient_id"] == patient][0]] = True  # one image of the patient
    split = assign_splits(lesions, val_fraction=0.2, test_fraction=0.2, seed=0, forced_test=forced)
    assert set(split[lesions["patient_id"] == patient]) == {"test"}
    unforced = assign_splits(lesions, val_fraction=0.2, test_fraction=0.2, seed=0)
    others = lesions["patient_id"] != patient
    assert split[others].equals(unforced[others])


def test_bad_fractions_are_refused():
    with pytest.raises(ValueError, match="val=0.5, test=0.5"):
        assign_splits(synthetic_lesions(10), val_fraction=0.5, test_fraction=0.5, seed=0)


@pytest.fixture(scope="module")
def isic_2019_2020(tmp_path_factory) -> pd.DataFrame:
    """The real ISIC 2019 training + ISIC 2020 training tables (2020 duplicates dropped), label = melanoma."""
    if not SHARED.is_dir():
        pytest.skip("../shared/fixtures/isic not beside the checkout")
    root = tmp_path_factory.mktemp("isic")
    frames = [read_source(layout, stage_layout(root, layout, SHARED), root).records_frame()
              for layout in ("isic2019", "isic2020")]
    records = pd.concat(frames, ignore_index=True)
    records = records[records["duplicate_of"].isna()].reset_index(drop=True)
    records["label"] = (records["diagnosis"] == "MEL").astype(int)
    return records


def test_real_isic_2019_2020_melanoma_rate_per_split_is_within_tolerance(isic_2019_2020: pd.DataFrame):
    lesions, groups = isic_2019_2020, group_keys(isic_2019_2020)
    rate = lesions["label"].mean()
    assert (len(lesions), groups.nunique(), round(rate, 4)) == (58032, 15987, 0.0879)
    tolerance = {name: TOLERANCE_STANDARD_ERRORS * label_rate_standard_error(lesions["label"], groups, fraction)
                 for name, fraction in FRACTIONS.items()}
    # the stated tolerance (docs/data.md): +-0.7 pp train, +-1.8 pp val and test
    assert (round(tolerance["train"], 3), round(tolerance["val"], 3)) == (0.007, 0.018)
    for seed in range(10):
        split = assign_splits(lesions, val_fraction=0.2, test_fraction=0.2, seed=seed)
        by_split = lesions.groupby(split.to_numpy())["label"].agg(["mean", "size"])
        for name, fraction in FRACTIONS.items():
            assert abs(by_split.at[name, "mean"] - rate) <= tolerance[name], (seed, name, by_split)
            assert abs(by_split.at[name, "size"] / len(lesions) - fraction) < 0.03, (seed, name, by_split)
    # seed 0 (params.yaml): 8.80 / 8.64 / 8.92 % (the old greedy deal gave 6.0 / 13.6 / 12.4 % here)
    split = assign_splits(lesions, val_fraction=0.2, test_fraction=0.2, seed=0)
    rates = lesions.groupby(split.to_numpy())["label"].mean().round(4).to_dict()
    assert rates == {"test": 0.0892, "train": 0.0880, "val": 0.0864}


def test_real_isic_2019_2020_melanoma_rate_per_skin_tone_is_within_tolerance(isic_2019_2020: pd.DataFrame):
    """The CSVs carry no skin tone: a synthetic tone per group (60/30/10 % A/B/C, independent of the hash).

    Each (split, tone) melanoma rate is compared with the tone's whole rate in standard errors z. The SE is
    calibrated (over 300 seeds: mean |z| 0.81, 0.22 % of cells beyond 3, none beyond 3.6), so across the
    90 cells of seeds 0-9 one cell past 3 SE is chance (seed 6, tone C, val: 3.17), not past 4.
    """
    lesions, groups = isic_2019_2020, group_keys(isic_2019_2020)
    unique = groups.unique()
    tone_of = dict(zip(unique, np.random.default_rng(123).choice(list("ABC"), len(unique), p=[0.6, 0.3, 0.1]),
                       strict=True))
    tones = groups.map(tone_of).to_numpy()
    rate = {tone: lesions.loc[tones == tone, "label"].mean() for tone in "ABC"}
    error = {(tone, name): label_rate_standard_error(lesions.loc[tones == tone, "label"], groups[tones == tone],
                                                     fraction)
             for tone in "ABC" for name, fraction in FRACTIONS.items()}
    z = []
    for seed in range(10):
        split = assign_splits(lesions, val_fraction=0.2, test_fraction=0.2, seed=seed).to_numpy()
        realised = lesions.groupby([split, tones])["label"].mean()
        z += [(realised[(name, tone)] - rate[tone]) / error[(tone, name)] for tone in "ABC" for name in FRACTIONS]
    z = np.abs(z)
    assert (z > TOLERANCE_STANDARD_ERRORS).sum() <= 1 and z.max() < 4, z.round(2)
    assert 0.6 < z.mean() < 1.0  # |N(0,1)| has mean 0.80: the tolerance is neither loose nor tight
