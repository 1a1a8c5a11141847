"""The lesions stage on hand-made layouts: one planted bad input per reject reason, merge rules, accounting."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipelines.config import SplitParams
from pipelines.lesions.stage import build_lesions
from tests.planted_layouts import jpeg, params_for


def test_every_row_is_kept_merged_or_rejected_with_its_reason(layouts: Path):
    lesions, rejects, report = build_lesions(params_for(layouts))
    reasons = rejects.groupby("reason")["isic_id"].apply(sorted).to_dict()
    assert reasons == {
        "corrupt_image": ["ISIC_0000006", "ISIC_0000007"],
        "label_conflict": ["ISIC_0000002", "ISIC_2000003", "ISIC_2000004"],
        "malformed_row": ["ISIC_12"],
        "missing_image": ["ISIC_0000005"],
        "unknown_label": ["ISIC_0000004", "ISIC_0000009", "ISIC_2000005"],
        "unsafe_path": ["../../etc/passwd"],
    }
    assert sorted(lesions["isic_id"]) == ["ISIC_0000001", "ISIC_0000002", "ISIC_0000003", "ISIC_0000006",
                                          "ISIC_0000008", "ISIC_2000001"]
    # 9 (2016) + 5 (2019) + 5 (2020) rows = 6 kept + 2 merged (0000003 from 2016, 2000002) + 11 rejected
    assert (report["rows_in"], report["kept"], report["merged_duplicates"], report["rejected"]) == (19, 6, 2, 11)


def test_rejects_name_the_file_and_row(layouts: Path):
    _, rejects, _ = build_lesions(params_for(layouts))
    row = rejects[rejects["reason"] == "unsafe_path"].iloc[0]
    assert row["source_file"] == "raw/isic2016/ISBI2016_ISIC_Part3_Training_GroundTruth.csv"
    assert row["source_row"] == 6
    conflict = rejects[(rejects["reason"] == "label_conflict") & (rejects["isic_id"] == "ISIC_0000002")].iloc[0]
    assert "isic2016:train" in conflict["detail"] and "isic2019:train" in conflict["detail"]
    unknown = rejects[rejects["isic_id"] == "ISIC_0000009"].iloc[0]
    assert unknown["source_row"] == 6 and "exactly one 1.0" in unknown["detail"]


def test_merge_keeps_newest_label_and_provenance(layouts: Path):
    lesions, _, _ = build_lesions(params_for(layouts))
    by_id = lesions.set_index("isic_id")
    assert by_id.at["ISIC_0000002", "diagnosis"] == "MEL" and by_id.at["ISIC_0000002", "label"] == 1
    assert by_id.at["ISIC_0000002", "sources"] == "isic2019:train"  # the conflicting 2016 row is a reject
    assert by_id.at["ISIC_0000003", "sources"] == "isic2016:train|isic2019:train"
    assert by_id.at["ISIC_0000003", "image_path"] == "raw/isic2019/ISIC_2019_Training_Input/" \
                                                     "ISIC_0000003_downsampled.jpg"
    assert by_id.at["ISIC_0000003", "sex"] == "male" and by_id.at["ISIC_0000003", "age_approx"] == 40
    # the 2019 copy of ISIC_0000006 is truncated: the id falls back to its 2016 image
    assert by_id.at["ISIC_0000006", "image_path"].startswith("raw/isic2016/")
    assert by_id.at["ISIC_2000001", "merged_ids"] == "ISIC_2000002"
    assert by_id.at["ISIC_2000001", "patient_id"] == "IP_1"


def test_scan_hashes_the_file_bytes_and_reads_sizes(layouts: Path):
    import hashlib

    lesions, _, _ = build_lesions(params_for(layouts))
    row = lesions.set_index("isic_id").loc["ISIC_0000001"]
    assert row["sha256"] == hashlib.sha256(jpeg(1)).hexdigest()
    assert (row["width"], row["height"]) == (96, 72)
    assert row["skin_tone_source"] in ("ita", "unknown")


def test_traversal_target_is_never_in_the_output(layouts: Path):
    lesions, _, _ = build_lesions(params_for(layouts))
    assert not lesions["image_path"].str.contains("passwd").any()


def test_unknown_layout_error_names_the_folder(tmp_path: Path):
    from pipelines.lesions.readers import read_source

    with pytest.raises(ValueError, match="unknown layout 'isic2021'"):
        read_source("isic2021", tmp_path, tmp_path)
    with pytest.raises(FileNotFoundError, match="no isic2016 ground-truth file"):
        read_source("isic2016", tmp_path, tmp_path)


def test_official_test_sources_are_forced_into_test(layouts: Path):
    params = params_for(layouts)
    forced = params.model_copy(update={"lesions": params.lesions.model_copy(update={
        "split": SplitParams(official_test_sources=["isic2016:train"])})})
    lesions, _, _ = build_lesions(forced)
    from_2016 = lesions["sources"].str.contains("isic2016:train")
    assert (lesions.loc[from_2016, "split"] == "test").all() and from_2016.sum() == 4
    assert isinstance(lesions, pd.DataFrame)


def test_mclass_d_images_never_train(layouts: Path):
    from pipelines.config import ExternalSetParams, ExternalSetsParams

    benchmark = layouts / "raw/mclass/BenchmarkDermoscopic"
    for folder, name in (("benign", "ISIC_0000001"), ("malign", "ISIC_0000003")):
        (benchmark / folder).mkdir(parents=True)
        (benchmark / folder / f"{name}.jpg").write_bytes(jpeg(1))
    params = params_for(layouts).model_copy(update={"external_sets": ExternalSetsParams(
        sets=[ExternalSetParams(name="mclass_d", path="raw/mclass")])})
    lesions, _, _ = build_lesions(params)
    by_id = lesions.set_index("isic_id")
    assert by_id.loc[["ISIC_0000001", "ISIC_0000003"], "split"].tolist() == ["test", "test"]
