"""ISIC 2020 (SIIM-ISIC) — DATA.md §1.5.

Ground truth v1 (8 columns) or v2 (adds `lesion_id`), or Kaggle's `train.csv` (v1 columns, float ages).
`target` 1 == `benign_malignant` malignant == diagnosis melanoma; a row where they disagree is rejected.
`ISIC_2020_Training_Duplicates.csv` lists 425 pairs of the same image: common practice drops
`image_name_1`, so those rows are marked as duplicates of `image_name_2` and merged (not lost).
"""

from __future__ import annotations

from pathlib import Path

from pipelines.lesions.readers.common import (
    ReaderResult,
    parse_age,
    parse_sex,
    read_csv_rows,
    record,
    relative_name,
    require_columns,
    resolve_row_image,
    strip_id,
)
from pipelines.lesions.readers.diagnosis_text import diagnosis_from_text
from pipelines.lesions.schema import UNKNOWN_LABEL

LAYOUT = "isic2020"
GROUND_TRUTHS = ("ISIC_2020_Training_GroundTruth_v2.csv", "ISIC_2020_Training_GroundTruth.csv", "train.csv")
DUPLICATES = "ISIC_2020_Training_Duplicates.csv"
IMAGE_DIRS = ("train", "train_jpeg", "ISIC_2020_Training_JPEG", "jpeg/train")
REQUIRED = ["image_name", "patient_id", "sex", "age_approx", "anatom_site_general_challenge", "diagnosis",
            "benign_malignant", "target"]


def read_isic2020(root: Path, data_root: Path) -> ReaderResult:
    gt = next((root / name for name in GROUND_TRUTHS if (root / name).is_file()), None)
    if gt is None:
        raise FileNotFoundError(f"{root}: no ISIC 2020 ground truth (expected one of {GROUND_TRUTHS})")
    images = next((root / d for d in IMAGE_DIRS if (root / d).is_dir()), root / IMAGE_DIRS[0])
    duplicates = read_duplicates(root / DUPLICATES)
    result = ReaderResult()
    source_file = relative_name(gt, data_root)
    rows = read_csv_rows(gt)
    require_columns(rows, REQUIRED, gt)
    result.rows_in = len(rows)
    for row in rows.to_dict("records"):
        line = row["__line__"]
        target, verdict = row["target"].strip(), row["benign_malignant"].strip().lower()
        diagnosis = diagnosis_from_text(row["diagnosis"])
        raw = row["diagnosis"].strip()
        expected = "1" if diagnosis == "MEL" else "0"
        if target not in ("0", "1") or verdict not in ("benign", "malignant"):
            result.reject(source_file, line, row["image_name"], UNKNOWN_LABEL,
                          f"target {target!r} / benign_malignant {verdict!r}: expected 0/1 and benign/malignant")
            continue
        if target != expected or (verdict == "malignant") != (target == "1"):
            result.reject(source_file, line, row["image_name"], UNKNOWN_LABEL,
                          f"diagnosis {raw!r}, benign_malignant {verdict!r} and target {target} disagree")
            continue
        found = resolve_row_image(result, raw_id=row["image_name"], folder=images, source_file=source_file,
                                  row=line, data_root=data_root)
        if found is None:
            continue
        isic_id, image_path = found
        result.records.append(record(
            isic_id=isic_id, source=f"{LAYOUT}:train", source_file=source_file, source_row=line,
            image_path=image_path, diagnosis=diagnosis, diagnosis_raw=raw, official_split="train",
            sex=parse_sex(row["sex"]), age_approx=parse_age(row["age_approx"]),
            anatom_site_general=row["anatom_site_general_challenge"], patient_id=row["patient_id"],
            lesion_id=row.get("lesion_id"), duplicate_of=duplicates.get(isic_id),
        ))
    return result


def read_duplicates(path: Path) -> dict[str, str]:
    """image_name_1 -> image_name_2 (the kept image), from the official duplicates CSV when present."""
    if not path.is_file():
        return {}
    rows = read_csv_rows(path)
    require_columns(rows, ["image_name_1", "image_name_2"], path)
    return {strip_id(r["image_name_1"]): strip_id(r["image_name_2"]) for r in rows.to_dict("records")}
