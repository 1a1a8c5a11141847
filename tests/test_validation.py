"""Great Expectations suites: a valid table passes; each planted defect fails its expectation by row id."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.config import ValidationParams
from pipelines.lesions.stage import build_lesions
from pipelines.validation import validate_lesions
from pipelines.validation.suites import REQUIRED_LESIONS
from tests.planted_layouts import params_for


@pytest.fixture()
def table(layouts: Path):
    lesions, _, _ = build_lesions(params_for(layouts))
    return lesions, layouts


def failed(report) -> dict[str, list[str]]:
    return {f"{o.expectation}:{o.column}": o.unexpected_rows for o in report.failures}


def test_valid_table_passes(table):
    lesions, root = table
    report = validate_lesions(lesions, root, ValidationParams())
    assert report.success, report.summary()
    assert len(report.outcomes) == 14 + len(REQUIRED_LESIONS)  # 14 table/value checks + not-null per column


def test_each_defect_fails_its_expectation_with_rows(table):
    lesions, root = table
    bad = lesions.copy()
    bad.loc[1, "isic_id"] = bad.loc[0, "isic_id"]  # duplicate id
    bad.loc[1, "split"] = bad.loc[0, "split"]  # same id = same group: else it is also a group in two splits
    bad.loc[2, "diagnosis"] = "MELANOMA"  # not a normalised code
    (root / bad.loc[3, "image_path"]).unlink()  # image file gone
    bad.loc[4, "patient_id"] = "IP_X"
    bad.loc[5, "patient_id"] = "IP_X"
    bad.loc[4, "split"], bad.loc[5, "split"] = "train", "test"  # one patient in two splits
    report = validate_lesions(bad, root, ValidationParams(label_rate_min=0.9, label_rate_max=1.0))
    failures = failed(report)
    assert set(failures) == {
        "expect_column_values_to_be_unique:isic_id",
        "expect_column_values_to_be_in_set:diagnosis",
        "expect_column_values_to_be_in_set:image_exists",
        "expect_column_values_to_be_in_set:patient_split_count",
        "expect_column_mean_to_be_between:label",
    }
    assert failures["expect_column_values_to_be_unique:isic_id"] == [lesions.loc[0, "isic_id"]]
    assert failures["expect_column_values_to_be_in_set:diagnosis"] == [lesions.loc[2, "isic_id"]]
    assert failures["expect_column_values_to_be_in_set:image_exists"] == [lesions.loc[3, "isic_id"]]
    assert failures["expect_column_values_to_be_in_set:patient_split_count"] == [
        lesions.loc[4, "isic_id"], lesions.loc[5, "isic_id"]]
    assert "expect_column_values_to_be_unique on isic_id: 2 rows" in report.summary()
