"""The expectations on `lesions` and on the external test-set table (issue: validation).

Checks that are not plain column expectations are computed as derived columns first and then
expected like any column, so GX reports them with their rows: `image_exists` (the image file is
under the data root) and `patient_split_count` (how many splits the row's patient appears in).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipelines.config import ValidationParams
from pipelines.lesions.schema import DIAGNOSES, ISIC_ID, LESION_COLUMNS
from pipelines.lesions.splits import group_keys
from pipelines.validation.gx_runner import ROW_KEY, run_expectations
from pipelines.validation.report import ValidationReport

GROUPS = ["A", "B", "C", "unknown"]
REQUIRED_LESIONS = ["isic_id", "sources", "image_path", "diagnosis", "label", "sha256", "width", "height",
                    "skin_tone_group", "skin_tone_source", "split"]


def image_exists(paths: pd.Series, data_root: Path) -> pd.Series:
    return paths.map(lambda p: isinstance(p, str) and (data_root / p).is_file())


def validate_lesions(lesions: pd.DataFrame, data_root: Path, params: ValidationParams,
                     table: str = "lesions.parquet") -> ValidationReport:
    import great_expectations as gx

    e = gx.expectations
    frame = lesions.assign(
        image_exists=image_exists(lesions["image_path"], data_root),
        patient_split_count=lesions.groupby(group_keys(lesions))["split"].transform("nunique"),
    )
    expectations = [
        e.ExpectTableColumnsToMatchSet(column_set=[*LESION_COLUMNS, "image_exists", "patient_split_count", ROW_KEY],
                                       exact_match=True),
        e.ExpectColumnValuesToBeUnique(column="isic_id"),
        e.ExpectColumnValuesToMatchRegex(column="isic_id", regex=ISIC_ID.pattern),
        *[e.ExpectColumnValuesToNotBeNull(column=c) for c in REQUIRED_LESIONS],
        e.ExpectColumnValuesToBeInSet(column="diagnosis", value_set=list(DIAGNOSES)),
        e.ExpectColumnValuesToBeInSet(column="label", value_set=[0, 1]),
        e.ExpectColumnValuesToBeInSet(column="sex", value_set=["male", "female"]),  # nulls allowed
        e.ExpectColumnValuesToBeInSet(column="fitzpatrick", value_set=[1, 2, 3, 4, 5, 6]),
        e.ExpectColumnValuesToBeInSet(column="skin_tone_group", value_set=GROUPS),
        e.ExpectColumnValuesToBeInSet(column="split", value_set=["train", "val", "test"]),
        e.ExpectColumnValuesToBeBetween(column="age_approx", min_value=0, max_value=100),
        e.ExpectColumnValuesToMatchRegex(column="sha256", regex=r"^[0-9a-f]{64}$"),
        e.ExpectColumnMeanToBeBetween(column="label", min_value=params.label_rate_min,
                                      max_value=params.label_rate_max),
        e.ExpectColumnValuesToBeInSet(column="image_exists", value_set=[True]),
        e.ExpectColumnValuesToBeInSet(column="patient_split_count", value_set=[1]),
    ]
    key = lesions["isic_id"].fillna(pd.Series([f"row {i}" for i in range(len(lesions))], index=lesions.index))
    return run_expectations(frame, expectations, "lesions", table, key)


def validate_external_sets(table: pd.DataFrame, data_root: Path,
                           name: str = "external_sets.parquet") -> ValidationReport:
    import great_expectations as gx

    e = gx.expectations
    frame = table.assign(image_exists=image_exists(table["image_path"], data_root))
    expectations = [
        e.ExpectCompoundColumnsToBeUnique(column_list=["dataset", "image_id"]),
        *[e.ExpectColumnValuesToNotBeNull(column=c) for c in ("dataset", "image_id", "image_path", "label")],
        e.ExpectColumnValuesToBeInSet(column="label", value_set=[0, 1]),
        e.ExpectColumnValuesToBeInSet(column="fitzpatrick", value_set=[1, 2, 3, 4, 5, 6]),
        e.ExpectColumnValuesToBeInSet(column="skin_tone_group", value_set=GROUPS),
        e.ExpectColumnValuesToBeInSet(column="modality", value_set=["dermoscopic", "clinical"]),
        e.ExpectColumnValuesToBeInSet(column="image_exists", value_set=[True]),
    ]
    key = table["dataset"].astype(str) + ":" + table["image_id"].astype(str)
    return run_expectations(frame, expectations, "external_sets", name, key)
