"""Layout variants: Kaggle's SIIM-ISIC train.csv, the HAM10000 Dataverse layout, an isic-cli export."""

from __future__ import annotations

from pathlib import Path

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
