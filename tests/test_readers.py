"""Each ISIC reader on the real ground-truth files: counts from DATA.md, encodings, id stripping."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.lesions.readers import read_source
from tests.isic_layouts import SHARED, stage_layout

full = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/fixtures/isic not beside the checkout")


def read(tmp_path: Path, layout: str, source: Path | None = None):
    root = stage_layout(tmp_path, layout, **({"source": source} if source else {}))
    result = read_source(layout, root, tmp_path)
    return result.records_frame(), result.rejects_frame(), result


def test_isic2016_excerpt_has_no_header_and_keeps_first_row(tmp_path):
    records, rejects, result = read(tmp_path, "isic2016")
    # 30 training rows (no header: ISIC_0000000 is data) + 1 quirk row, 20 test rows.
    assert result.rows_in == 51 and rejects.empty
    assert records["isic_id"].iloc[0] == "ISIC_0000000"
    train = records[records["source"] == "isic2016:train"]
    assert train.set_index("isic_id").at["ISIC_0000002", "diagnosis"] == "MEL"
    assert train.set_index("isic_id").at["ISIC_0000077", "diagnosis_raw"] == "benign"
    # the last training row is read although the file has no trailing newline
    assert "ISIC_0000077" in set(train["isic_id"]) and train["source_row"].max() == 31
    test = records[records["source"] == "isic2016:test"]
    assert set(test["diagnosis_raw"]) <= {"0.0", "1.0"} and (test["diagnosis"] == "MEL").sum() == (
        test["diagnosis_raw"] == "1.0").sum()


def test_image_paths_are_relative_to_the_data_root(tmp_path):
    records, _, _ = read(tmp_path, "isic2016")
    assert records["image_path"].iloc[0] == "isic2016/ISBI2016_ISIC_Part3_Training_Data/ISIC_0000000.jpg"


def test_isic2019_strips_downsampled_but_finds_the_suffixed_file(tmp_path):
    records, rejects, _ = read(tmp_path, "isic2019")
    assert rejects.empty
    downsampled = records[records["image_path"].str.contains("_downsampled")]
    assert len(downsampled) > 0
    assert not records["isic_id"].str.contains("_downsampled").any()
    assert records["isic_id"].is_unique


@full
def test_isic2016_full_counts(tmp_path):
    records, rejects, _ = read(tmp_path, "isic2016", SHARED)
    assert rejects.empty
    counts = records.groupby(["source", "diagnosis"]).size().to_dict()
    assert counts == {("isic2016:test", "BEN"): 304, ("isic2016:test", "MEL"): 75,
                      ("isic2016:train", "BEN"): 727, ("isic2016:train", "MEL"): 173}


@full
def test_isic2017_full_counts(tmp_path):
    records, rejects, _ = read(tmp_path, "isic2017", SHARED)
    assert rejects.empty
    counts = records.groupby(["source", "diagnosis"]).size().to_dict()
    assert counts == {
        ("isic2017:train", "MEL"): 374, ("isic2017:train", "BKL"): 254, ("isic2017:train", "NV"): 1372,
        ("isic2017:val", "MEL"): 30, ("isic2017:val", "BKL"): 42, ("isic2017:val", "NV"): 78,
        ("isic2017:test", "MEL"): 117, ("isic2017:test", "BKL"): 90, ("isic2017:test", "NV"): 393,
    }


@full
def test_isic2018_test_full_counts(tmp_path):
    records, rejects, _ = read(tmp_path, "isic2018", SHARED)
    assert rejects.empty
    assert records["diagnosis"].value_counts().to_dict() == {
        "NV": 909, "BKL": 217, "MEL": 171, "BCC": 93, "DF": 44, "AKIEC": 43, "VASC": 35}


@full
def test_isic2019_full_counts_and_metadata(tmp_path):
    records, rejects, _ = read(tmp_path, "isic2019", SHARED)
    assert rejects.empty and len(records) == 25331 and records["isic_id"].is_unique
    assert records["diagnosis"].value_counts().to_dict() == {
        "NV": 12875, "MEL": 4522, "BCC": 3323, "BKL": 2624, "AK": 867, "SCC": 628, "VASC": 253, "DF": 239}
    assert records["image_path"].str.contains("_downsampled").sum() == 2074
    # metadata joined by stripped id (DATA.md §1.4 missing counts)
    assert records["sex"].isna().sum() == 384
    assert records["lesion_id"].isna().sum() == 2084
    assert records["age_approx"].isna().sum() == 437
    assert records["anatom_site_general"].isna().sum() == 2631


@full
def test_isic2020_full_counts_and_duplicates(tmp_path):
    records, rejects, _ = read(tmp_path, "isic2020", SHARED)
    assert rejects.empty and len(records) == 33126
    assert (records["diagnosis"] == "MEL").sum() == 584
    assert records["patient_id"].nunique() == 2056
    assert records["duplicate_of"].notna().sum() == 425
    assert records["anatom_site_general"].isna().sum() == 527
    assert records["sex"].isna().sum() == 65 and records["age_approx"].isna().sum() == 68
