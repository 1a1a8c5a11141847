"""ISIC 2020 (SIIM-ISIC) — DATA.md §1.5.

Ground truth v1 (8 columns) or v2 (adds `lesion_id`), or Kaggle's `train.csv` (v1 columns, float ages).
`target` 1 == `benign_malignant` malignant == diagnosis melanoma; a row where they disagree is rejected.
`ISIC_2020_Training_Duplicates.csv` lists 425 pairs of the same image: common practice drops
`image_name_1`, so those rows are marked as duplicates of `image_name_2` and merged (not lost).

Images: the official `ISIC_2020_Training_JPEG.zip` unpacks to `train/`; Kaggle's SIIM-ISIC download has
`train/` full of DICOM (`.dcm`) files and the JPEGs in `jpeg/train/`, and no duplicates file (point the
source's `duplicates:` option at the official CSV). The first candidate folder that holds JPEG/PNG
files is read: DICOM is never decoded.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pipelines.lesions.readers.common import (
    IMAGE_EXTENSIONS,
    ReaderResult,
    folder_label,
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

log = logging.getLogger(__name__)

LAYOUT = "isic2020"
GROUND_TRUTHS = ("ISIC_2020_Training_GroundTruth_v2.csv", "ISIC_2020_Training_GroundTruth.csv", "train.csv")
DUPLICATES = "ISIC_2020_Training_Duplicates.csv"
IMAGE_DIRS = ("train", "train_jpeg", "ISIC_2020_Training_JPEG", "jpeg/train")
REQUIRED = ["image_name", "patient_id", "sex", "age_approx", "anatom_site_general_challenge", "diagnosis",
            "benign_malignant", "target"]


def read_isic2020(root: Path, data_root: Path, duplicates: Path | None = None) -> ReaderResult:
    """`duplicates`: the official duplicates CSV when it is not in `root` (Kaggle's layout has none)."""
    gt = next((root / name for name in GROUND_TRUTHS if (root / name).is_file()), None)
    if gt is None:
        raise FileNotFoundError(f"{root}: no ISIC 2020 ground truth (expected one of {GROUND_TRUTHS})")
    images = image_folder(root)
    duplicates = read_duplicates(duplicates_file(root, duplicates))
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
        found = resolve_row_image(result, raw_id=row["image_name"], folder=images, root=root,
                                  source_file=source_file, row=line, data_root=data_root)
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


def image_folder(root: Path) -> Path:
    """The first of IMAGE_DIRS that holds images; a folder of DICOM only (Kaggle's `train/`) is skipped."""
    existing = [root / d for d in IMAGE_DIRS if (root / d).is_dir()]
    for folder in existing:
        if _holds_images(folder):
            return folder
    if existing:
        log.warning("%s: none of %s holds JPEG/PNG images (a DICOM-only folder is not read); every row "
                    "will be a missing_image reject", root, [folder_label(f, root) for f in existing])
    return existing[0] if existing else root / IMAGE_DIRS[0]


def _holds_images(folder: Path) -> bool:
    with os.scandir(folder) as entries:
        return any(entry.name.endswith(IMAGE_EXTENSIONS) and entry.is_file() for entry in entries)


def duplicates_file(root: Path, option: Path | None) -> Path | None:
    """The duplicates CSV to read: the source's `duplicates` option, else the one in `root`, else None
    (warned: the 425 duplicate pairs then stay separate images, two rows for one lesion photo)."""
    if option is not None:
        if not option.is_file():
            raise FileNotFoundError(f"lesions.sources: duplicates file {option} (for {root}) does not exist")
        return option
    if (root / DUPLICATES).is_file():
        return root / DUPLICATES
    log.warning("%s: no %s, so ISIC 2020's duplicate image pairs (425 in the official training set) stay "
                "separate images; set `duplicates: <path to %s>` on this source in lesions.sources",
                root, DUPLICATES, DUPLICATES)
    return None


def read_duplicates(path: Path | None) -> dict[str, str]:
    """image_name_1 -> image_name_2 (the kept image), from the official duplicates CSV when present."""
    if path is None or not path.is_file():
        return {}
    rows = read_csv_rows(path)
    require_columns(rows, ["image_name_1", "image_name_2"], path)
    return {strip_id(r["image_name_1"]): strip_id(r["image_name_2"]) for r in rows.to_dict("records")}
