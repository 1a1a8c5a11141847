"""Layout variants: Kaggle's SIIM-ISIC train.csv, the HAM10000 Dataverse layout, an isic-cli export."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pipelines.lesions.readers import read_source


def touch_images(folder: Path, names: list[str], ext: str = ".jpg") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / f"{name}{ext}").touch()


def test_kaggle_train_csv_with_float_ages_and_lf(tmp_path: Path):
    root = tmp_path / "siim"
    touch_images(root / "train", ["ISIC_2637011", "ISIC_0015719", "ISIC_0052212"])
    (root / "train.csv").write_text(
        "image_name,patient_id,sex,age_approx,anatom_site_general_challenge,diagnosis,benign_malignant,target\n"
        "ISIC_2637011,IP_7279968,male,45.0,head/neck,unknown,benign,0\n"
        "ISIC_0015719,IP_3075186,female,45.0,upper extremity,unknown,benign,0\n"
        "ISIC_0052212,IP_2842074,female,50.0,lower extremity,melanoma,malignant,1\n")
    records = read_source("isic2020", root, tmp_path).records_frame()
    assert records["age_approx"].tolist() == [45.0, 45.0, 50.0]
    assert records["diagnosis"].tolist() == ["UNK", "UNK", "MEL"]
    assert records["source_file"].iloc[0] == "siim/train.csv" and records["source_row"].tolist() == [2, 3, 4]


def test_ham10000_layout_reads_dx_from_two_image_folders(tmp_path: Path):
    root = tmp_path / "ham"
    touch_images(root / "HAM10000_images_part_1", ["ISIC_0027419"])
    touch_images(root / "HAM10000_images_part_2", ["ISIC_0031633"])
    (root / "HAM10000_metadata.csv").write_text(
        "lesion_id,image_id,dx,dx_type,age,sex,localization\n"
        "HAM_0000118,ISIC_0027419,bkl,histo,80.0,male,scalp\n"
        "HAM_0002730,ISIC_0031633,akiec,histo,,unknown,face\n"
        "HAM_0002731,ISIC_0031634,xyz,histo,60.0,male,face\n")
    result = read_source("ham10000", root, tmp_path)
    records, rejects = result.records_frame(), result.rejects_frame()
    assert records["diagnosis"].tolist() == ["BKL", "AKIEC"]
    assert records["image_path"].tolist() == ["ham/HAM10000_images_part_1/ISIC_0027419.jpg",
                                              "ham/HAM10000_images_part_2/ISIC_0031633.jpg"]
    assert records["sex"].iloc[0] == "male" and records["sex"].isna().iloc[1]
    assert records["lesion_id"].iloc[1] == "HAM_0002730"
    assert rejects[["source_row", "reason"]].values.tolist() == [[4, "unknown_label"]]


def test_isic_cli_export_takes_the_deepest_diagnosis_and_fitzpatrick(tmp_path: Path):
    root = tmp_path / "archive"
    touch_images(root, ["ISIC_9000001", "ISIC_9000002", "ISIC_9000003", "ISIC_9000004"])
    (root / "metadata.csv").write_text(
        "isic_id,attribution,copyright_license,diagnosis_1,diagnosis_2,diagnosis_3,fitzpatrick_skin_type,sex\n"
        'ISIC_9000001,"Hospital A, Dept B",CC-BY,Malignant,Malignant melanocytic proliferations (Melanoma),'
        "Melanoma Invasive,V,female\n"
        "ISIC_9000002,X,CC-0,Benign,Benign melanocytic proliferations,Nevus,II,male\n"
        "ISIC_9000003,X,CC-0,Benign,,,,\n"
        "ISIC_9000004,X,CC-0,,,,VII,\n")
    result = read_source("isic_archive", root, tmp_path)
    records, rejects = result.records_frame(), result.rejects_frame()
    assert records["diagnosis"].tolist() == ["MEL", "NV", "BEN"]
    assert records["fitzpatrick"].tolist()[:2] == [5, 2] and records["fitzpatrick"].isna().tolist()[2]
    assert records["diagnosis_raw"].iloc[0] == "Melanoma Invasive"
    assert rejects[["isic_id", "reason"]].values.tolist() == [["ISIC_9000004", "unknown_label"]]


KAGGLE_CSV = ("image_name,patient_id,sex,age_approx,anatom_site_general_challenge,diagnosis,benign_malignant,target\n"
              "ISIC_2637011,IP_7279968,male,45.0,head/neck,unknown,benign,0\n"
              "ISIC_0015719,IP_3075186,female,45.0,upper extremity,unknown,benign,0\n"
              "ISIC_0052212,IP_2842074,female,50.0,lower extremity,melanoma,malignant,1\n")


def kaggle_layout(root: Path) -> Path:
    """Kaggle's SIIM-ISIC download as shipped: `train/` holds DICOM, the JPEGs are in `jpeg/train/`."""
    names = ["ISIC_2637011", "ISIC_0015719", "ISIC_0052212"]
    touch_images(root / "train", names, ".dcm")
    touch_images(root / "jpeg" / "train", names)
    touch_images(root / "test", ["ISIC_0052060"], ".dcm")
    (root / "train.csv").write_text(KAGGLE_CSV)
    return root


def test_kaggle_layout_reads_the_jpegs_not_the_dicom_folder(tmp_path: Path):
    result = read_source("isic2020", kaggle_layout(tmp_path / "siim"), tmp_path)
    assert result.rejects == []
    assert result.records_frame()["image_path"].tolist() == [
        "siim/jpeg/train/ISIC_2637011.jpg", "siim/jpeg/train/ISIC_0015719.jpg", "siim/jpeg/train/ISIC_0052212.jpg"]


def test_official_layout_still_reads_train(tmp_path: Path):
    root = kaggle_layout(tmp_path / "siim")
    touch_images(root / "train", ["ISIC_2637011", "ISIC_0015719", "ISIC_0052212"])  # JPEGs beside the DICOM
    records = read_source("isic2020", root, tmp_path).records_frame()
    assert records["image_path"].str.startswith("siim/train/").all()


def test_dicom_only_download_rejects_rows_with_a_relative_detail(tmp_path: Path, caplog):
    root = tmp_path / "siim"
    touch_images(root / "train", ["ISIC_2637011", "ISIC_0015719", "ISIC_0052212"], ".dcm")
    (root / "train.csv").write_text(KAGGLE_CSV)
    with caplog.at_level(logging.WARNING):
        result = read_source("isic2020", root, tmp_path)
    assert "holds JPEG/PNG images" in caplog.text
    assert [r["detail"] for r in result.rejects][0] == "no image ISIC_2637011.jpg in train/"


def test_missing_duplicates_file_is_warned_and_the_option_reads_it(tmp_path: Path, caplog):
    root = kaggle_layout(tmp_path / "siim")
    with caplog.at_level(logging.WARNING, logger="pipelines.lesions.readers.isic2020"):
        alone = read_source("isic2020", root, tmp_path).records_frame()
    assert "no ISIC_2020_Training_Duplicates.csv" in caplog.text and "duplicates:" in caplog.text
    assert alone["duplicate_of"].isna().all()

    caplog.clear()
    official = tmp_path / "isic2020_official" / "ISIC_2020_Training_Duplicates.csv"
    official.parent.mkdir()
    official.write_text("image_name_1,image_name_2\r\nISIC_0015719,ISIC_2637011\r\n")
    with caplog.at_level(logging.WARNING, logger="pipelines.lesions.readers.isic2020"):
        paired = read_source("isic2020", root, tmp_path, duplicates=official).records_frame()
    assert caplog.text == ""
    assert paired.set_index("isic_id")["duplicate_of"].dropna().to_dict() == {"ISIC_0015719": "ISIC_2637011"}


def test_duplicates_option_errors(tmp_path: Path):
    root = kaggle_layout(tmp_path / "siim")
    with pytest.raises(FileNotFoundError, match="duplicates file .*nowhere.csv"):
        read_source("isic2020", root, tmp_path, duplicates=tmp_path / "nowhere.csv")
    with pytest.raises(ValueError, match="isic2020.* only, not 'isic2019'"):
        read_source("isic2019", root, tmp_path, duplicates=tmp_path / "nowhere.csv")
    from pipelines.config import LesionsParams, Params, SourceParams

    with pytest.raises(ValueError, match="`duplicates` is read for layouts"):
        Params(data_root=str(tmp_path), lesions=LesionsParams(sources=[
            SourceParams(layout="isic2019", path="x", duplicates="d.csv")]))
