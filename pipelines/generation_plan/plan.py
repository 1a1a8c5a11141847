"""The arithmetic of a generation plan: real counts per cell -> target -> samples to generate."""

from __future__ import annotations

import math

import pandas as pd

from pipelines.generation_plan.params import GenerationPlanParams

SKIN_TONE_GROUPS = ("A", "B", "C")  # FST I-II, III-IV, V-VI (Class-N-Diff §IV-A)
SEXES = ("female", "male")
LABEL_NAMES = {0: "benign", 1: "malignant"}
PLAN_COLUMNS = ("cell", "label", "skin_tone_group", "sex", "real", "target", "to_generate")


def cell_name(label: int, skin_tone_group: str, sex: str | None) -> str:
    """A file-name-safe cell id: `malignant_C` or `malignant_C_female`."""
    return "_".join([LABEL_NAMES[label], skin_tone_group] + ([sex] if sex else []))


def real_counts(lesions: pd.DataFrame, split: str, by_sex: bool) -> pd.DataFrame:
    """Rows of `split` counted per cell; every cell is listed, empty ones with 0.

    Rows whose skin-tone group is unknown (or sex, when `by_sex`) belong to no cell: a synthetic sample is
    generated for a known group.
    """
    needed = {"split", "label", "skin_tone_group"} | ({"sex"} if by_sex else set())
    missing = needed - set(lesions.columns)
    if missing:
        raise ValueError(f"lesions table: columns {sorted(missing)} missing; expected the lesions schema")
    rows = lesions[lesions["split"] == split]
    keys = ["label", "skin_tone_group"] + (["sex"] if by_sex else [])
    counted = rows.groupby(keys, dropna=True).size()
    cells = [(label, group, sex) for label in LABEL_NAMES for group in SKIN_TONE_GROUPS
             for sex in (SEXES if by_sex else (None,))]
    records = []
    for label, group, sex in cells:
        key = (label, group, sex) if by_sex else (label, group)
        records.append({"cell": cell_name(label, group, sex), "label": label, "skin_tone_group": group,
                        "sex": sex, "real": int(counted.get(key, 0))})
    return pd.DataFrame.from_records(records)


def compute_plan(counts: pd.DataFrame, params: GenerationPlanParams) -> pd.DataFrame:
    """Add `target` and `to_generate` (= target - real, never negative) to a `real_counts` table."""
    plan = counts.copy()
    real = plan["real"].astype(int)
    if params.policy == "none":
        target = real
    elif params.policy == "min_per_cell":
        target = real.clip(lower=params.min_per_cell)
    elif params.policy == "ratio":
        # half rounds up (Python's round() would round 2.5 to 2)
        target = real + [math.floor(params.ratio * r + 0.5) for r in real]
    elif params.policy == "equalize":
        # the largest skin-tone group's count, per label (and per sex: sexes are equalized separately)
        largest = plan.groupby(["label", plan["sex"].fillna("")])["real"].transform("max")
        equalized = plan["label"].eq(1) | params.equalize_benign
        target = real.where(~equalized, largest)
    else:  # pydantic already restricts the value; kept for a clear error if the Literal grows
        raise ValueError(f"generation_plan.policy {params.policy!r}: unknown")
    plan["target"] = pd.Series(target, index=plan.index).astype(int)
    plan["to_generate"] = (plan["target"] - real).clip(lower=0).astype(int)
    return plan[list(PLAN_COLUMNS)]
