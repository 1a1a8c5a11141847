"""The lesions stage on hand-made layouts: one planted bad input per reject reason, merge rules, accounting."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pandas as pd
import pytest

from pipelines.atomic_files import write_parquet
from pipelines.config import LesionsParams, Params, SourceParams, SplitParams
from pipelines.lesions.stage import NoLesionsError, build_lesions
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


KAGGLE_CSV = ("image_name,patient_id,sex,age_approx,anatom_site_general_challenge,diagnosis,benign_malignant,target\n"
              "ISIC_2637011,IP_7279968,male,45.0,head/neck,unknown,benign,0\n"
              "ISIC_0015719,IP_7279968,male,45.0,head/neck,unknown,benign,0\n"
              "ISIC_0052212,IP_2842074,female,50.0,lower extremity,melanoma,malignant,1\n")
KAGGLE_IDS = ["ISIC_2637011", "ISIC_0015719", "ISIC_0052212"]


def kaggle_params(root: Path, jpegs: bool = True, duplicates: str | None = None, corrupt: bool = False) -> Params:
    """Kaggle's SIIM-ISIC layout under `root/raw/siim`: DICOM in `train/`, JPEGs (optional) in `jpeg/train/`."""
    siim = root / "raw/siim"
    for folder in (siim / "train", siim / "jpeg/train"):
        folder.mkdir(parents=True)
    for i, name in enumerate(KAGGLE_IDS):
        (siim / "train" / f"{name}.dcm").write_bytes(b"DICM" + bytes(128))
        if jpegs:
            (siim / "jpeg/train" / f"{name}.jpg").write_bytes(b"garbage" if corrupt else jpeg(40 + i))
    (siim / "train.csv").write_text(KAGGLE_CSV)
    return Params(data_root=str(root), lesions=LesionsParams(
        sources=[SourceParams(layout="isic2020", path="raw/siim", duplicates=duplicates)], workers=1,
        split=SplitParams(val_fraction=0.2, test_fraction=0.2)))


def test_every_row_rejected_fails_naming_sources_count_and_reasons(tmp_path: Path):
    params = kaggle_params(tmp_path / "data", jpegs=False)  # a DICOM-only download: no image to read
    with pytest.raises(NoLesionsError) as error:
        build_lesions(params)
    message = str(error.value)
    assert f"isic2020 at {tmp_path / 'data/raw/siim'}" in message
    assert "every one of the 3 input rows was rejected" in message
    assert "missing_image: 3 (e.g. raw/siim/train.csv line 2: no image ISIC_2637011.jpg in train/)" in message
    assert "raw/siim/train.csv: 3" in message


def test_every_image_corrupt_fails_with_the_decode_reason(tmp_path: Path):
    with pytest.raises(NoLesionsError, match=r"corrupt_image: 3 \(e\.g\. raw/siim/train\.csv line 2: "
                                             r"raw/siim/jpeg/train/ISIC_2637011\.jpg: UnidentifiedImageError"):
        build_lesions(kaggle_params(tmp_path / "data", corrupt=True))


def test_kaggle_layout_end_to_end_with_the_duplicates_option(tmp_path: Path, caplog):
    root = tmp_path / "data"
    (root / "raw/isic2020_csv").mkdir(parents=True)
    (root / "raw/isic2020_csv/ISIC_2020_Training_Duplicates.csv").write_text(
        "image_name_1,image_name_2\r\nISIC_0015719,ISIC_2637011\r\n")
    params = kaggle_params(root, duplicates="raw/isic2020_csv/ISIC_2020_Training_Duplicates.csv")
    lesions, rejects, report = build_lesions(params)
    assert rejects.empty and report["merged_duplicates"] == 1
    assert lesions.set_index("isic_id")["merged_ids"].to_dict() == {"ISIC_0052212": "", "ISIC_2637011": "ISIC_0015719"}
    assert lesions["image_path"].str.startswith("raw/siim/jpeg/train/").all()

    other = tmp_path / "again"
    with caplog.at_level(logging.WARNING):
        lesions, _, report = build_lesions(kaggle_params(other))  # no duplicates file anywhere: warned
    assert len(lesions) == 3 and report["merged_duplicates"] == 0
    assert "duplicate image pairs" in caplog.text and "set `duplicates:" in caplog.text


def test_rejects_are_the_same_bytes_on_any_machine_and_run(layouts: Path, tmp_path: Path):
    """Two copies of the same download in different places: identical rejects, no address, no absolute path."""
    elsewhere = tmp_path / "elsewhere" / "deeper" / "data"
    shutil.copytree(layouts, elsewhere)
    files = []
    for root in (layouts, elsewhere):
        _, rejects, _ = build_lesions(params_for(root))
        files.append(write_parquet(rejects, tmp_path / f"rejects_{len(files)}.parquet"))
        details = "\n".join(rejects["detail"])
        assert "0x" not in details and str(tmp_path) not in details and "/tmp" not in details
    assert files[0].read_bytes() == files[1].read_bytes()
    by_reason = rejects.set_index("reason")["detail"]
    assert by_reason["unsafe_path"] == "image name '../../etc/passwd' would leave ISBI2016_ISIC_Part3_Training_Data/"
    assert by_reason["missing_image"] == "no image ISIC_0000005.jpg in ISBI2016_ISIC_Part3_Training_Data/"
    assert ("raw/isic2019/ISIC_2019_Training_Input/ISIC_0000007.jpg: UnidentifiedImageError: cannot identify "
            "image file") in by_reason["corrupt_image"].tolist()
