"""The predictions table every classifier writes, its validator, and the ISIC challenge CSV export.

One row per (classifier, test_set, image). Validation predictions (for the decision threshold) use the
same columns with their own `test_set` name (e.g. `isic_val`). Missing subgroup values are written as
null or "unknown"; `validate_predictions` turns nulls into "unknown".
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.atomic_files import atomic_path
from pipelines.fairness.subgroups import SKIN_TONE_GROUPS, UNKNOWN

PREDICTION_COLUMNS = (
    "classifier",  # e.g. "baseline", "augmented", "class_n_diff"
    "test_set",  # "isic_test", "ddi", "fitzpatrick17k", "derm7pt_derm", ... (pipelines.fairness.params)
    "image_id",  # ISIC id or the external set's image id; unique within (classifier, test_set)
    "label",  # 1 = malignant by the configured label policy, 0 = benign
    "score",  # predicted probability of malignant, in [0, 1]
    "skin_tone_group",  # A / B / C / unknown
    "sex",  # male / female / unknown
    "age_approx",  # years, NaN when unknown
    "anatom_site_general",  # lower-case ISIC site or unknown
    "source",  # where the image comes from, e.g. "isic2019:train", "ddi"
)
_TEXT_COLUMNS = ("classifier", "test_set", "image_id")
_SUBGROUP_TEXT = ("skin_tone_group", "sex", "anatom_site_general", "source")
_SEXES = ("male", "female", UNKNOWN)
# test_set and classifier names become file names and metrics.json keys
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

# The binary task as two one-hot categories: `isic-challenge-scoring classification` takes its
# categories from the ground-truth header and needs the prediction CSV to have exactly those columns
# (DATA.md §4), so both files are written with these. "malignant" rather than "MEL" because the label
# policy may count BCC/SCC as malignant too (DATA.md §1.7).
ISIC_CATEGORIES = ("malignant", "benign")


class PredictionsError(ValueError):
    """A predictions table breaks the schema; the message names the table, column and rows."""


def validate_predictions(frame: pd.DataFrame, where: str = "predictions") -> pd.DataFrame:
    """A normalised copy of `frame` (dtypes fixed, null subgroup values -> "unknown"), or raise
    PredictionsError naming `where`, the column and the first offending rows (0-based positions)."""
    missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
    if missing:
        raise PredictionsError(f"{where}: missing column(s) {missing}; expected {list(PREDICTION_COLUMNS)}")
    table = frame.reset_index(drop=True).copy()
    for column in _TEXT_COLUMNS:
        values = table[column]
        _fail_rows(where, column, values.isna() | (values.astype(str).str.strip() == ""), "a non-empty string")
        table[column] = values.astype(str)
    for column in ("classifier", "test_set"):
        _fail_rows(where, column, ~table[column].map(lambda v: bool(_NAME.match(v))),
                   "a name of letters, digits, '_', '-', '.' (it becomes a file name)")
    labels = pd.to_numeric(table["label"], errors="coerce")
    _fail_rows(where, "label", ~labels.isin([0, 1]), "0 or 1")
    table["label"] = labels.astype("int64")
    scores = pd.to_numeric(table["score"], errors="coerce")
    _fail_rows(where, "score", ~((scores >= 0) & (scores <= 1)), "a probability in [0, 1]")
    table["score"] = scores.astype("float64")
    for column in _SUBGROUP_TEXT:
        table[column] = table[column].astype(object).where(table[column].notna(), UNKNOWN).astype(str).str.strip()
        table.loc[table[column] == "", column] = UNKNOWN
    _fail_rows(where, "skin_tone_group", ~table["skin_tone_group"].isin([*SKIN_TONE_GROUPS, UNKNOWN]),
               f"one of {[*SKIN_TONE_GROUPS, UNKNOWN]}")
    table["sex"] = table["sex"].str.lower()
    _fail_rows(where, "sex", ~table["sex"].isin(_SEXES), f"one of {list(_SEXES)}")
    ages = pd.to_numeric(table["age_approx"], errors="coerce")
    _fail_rows(where, "age_approx", table["age_approx"].notna() & ages.isna(), "a number of years or empty")
    _fail_rows(where, "age_approx", (ages < 0) | (ages > 120), "an age in [0, 120]")
    table["age_approx"] = ages.astype("float64")
    duplicated = table.duplicated(["classifier", "test_set", "image_id"], keep=False)
    _fail_rows(where, "image_id", duplicated, "one row per (classifier, test_set, image_id)")
    return table


def _fail_rows(where: str, column: str, bad: pd.Series, expected: str) -> None:
    if not bad.any():
        return
    rows = np.flatnonzero(bad.to_numpy(dtype=bool))
    shown = ", ".join(str(r) for r in rows[:10]) + (", ..." if len(rows) > 10 else "")
    raise PredictionsError(f"{where}: column {column!r} expected {expected}; {len(rows)} row(s) fail: {shown}")


def read_predictions(path: Path) -> pd.DataFrame:
    """A predictions parquet (or CSV), validated."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: predictions table not found")
    frame = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    return validate_predictions(frame, where=str(path))


def isic_prediction_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """One classifier x test set as the ISIC challenge submission layout: `image` + one probability
    column per category (`ISIC_CATEGORIES`), sorted by image."""
    _require_one(frame, "classifier")
    _require_one(frame, "test_set")
    rows = frame.sort_values("image_id")
    score = rows["score"].to_numpy(dtype=float)
    return pd.DataFrame({"image": _isic_images(rows), ISIC_CATEGORIES[0]: score, ISIC_CATEGORIES[1]: 1.0 - score})


def isic_ground_truth_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The test set's labels in the ISIC one-hot ground-truth layout (floats 0.0/1.0, as the 2017-2019 GT)."""
    _require_one(frame, "test_set")
    rows = frame.drop_duplicates("image_id").sort_values("image_id")
    label = rows["label"].to_numpy(dtype=float)
    return pd.DataFrame({"image": _isic_images(rows), ISIC_CATEGORIES[0]: label, ISIC_CATEGORIES[1]: 1.0 - label})


def _isic_images(rows: pd.DataFrame) -> np.ndarray:
    """Image ids as the official parser keys them: it strips a ".jpg" suffix from predictions (not from
    the ground truth), so both files are written without it; ids that then collide are an error."""
    images = rows["image_id"].str.replace(r"\.jpg$", "", case=False, regex=True)
    if images.duplicated().any():
        clash = sorted(set(rows.loc[images.duplicated(keep=False).to_numpy(), "image_id"]))
        raise PredictionsError(f"image ids {clash[:10]} collide once '.jpg' is stripped (ISIC CSV image column)")
    return images.to_numpy()


def write_isic_csv(table: pd.DataFrame, path: Path) -> Path:
    """Write an ISIC-layout frame. pandas writes floats as their shortest repr, always with a decimal
    point ("1.0"), so they read back bit-identical and as floats (the official parser rejects others)."""
    with atomic_path(Path(path)) as temp:
        table.to_csv(temp, index=False)
    return Path(path)


def _require_one(frame: pd.DataFrame, column: str) -> None:
    values = frame[column].unique()
    if len(values) != 1:
        raise PredictionsError(f"expected the rows of one {column}, got {sorted(map(str, values))}")
