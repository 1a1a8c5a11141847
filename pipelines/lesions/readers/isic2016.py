"""ISIC 2016 (ISBI 2016 Part 3) ground truth — DATA.md §1.1.

No header row in either file (reading with a header silently loses the first image). Training labels
are `benign`/`malignant`, test labels `0.0`/`1.0`; "malignant" means melanoma.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.lesions.readers.common import ReaderResult, read_csv_rows, record, relative_name, resolve_row_image
from pipelines.lesions.schema import MALFORMED_ROW, UNKNOWN_LABEL

LAYOUT = "isic2016"
# (split, ground-truth CSV, image folder); Part 3B files have the same format.
FILES = (
    ("train", "ISBI2016_ISIC_Part3_Training_GroundTruth.csv", "ISBI2016_ISIC_Part3_Training_Data"),
    ("test", "ISBI2016_ISIC_Part3_Test_GroundTruth.csv", "ISBI2016_ISIC_Part3_Test_Data"),
    ("train", "ISBI2016_ISIC_Part3B_Training_GroundTruth.csv", "ISBI2016_ISIC_Part3B_Training_Data"),
    ("test", "ISBI2016_ISIC_Part3B_Test_GroundTruth.csv", "ISBI2016_ISIC_Part3B_Test_Data"),
)
LABELS = {"benign": "BEN", "malignant": "MEL", "0.0": "BEN", "1.0": "MEL", "0": "BEN", "1": "MEL"}


def read_isic2016(root: Path, data_root: Path) -> ReaderResult:
    result = ReaderResult()
    for split, gt_name, image_dir in FILES:
        gt = root / gt_name
        if gt.is_file():
            result.extend(_read_file(gt, root / image_dir, split, root, data_root))
    return result


def _read_file(gt: Path, images: Path, split: str, root: Path, data_root: Path) -> ReaderResult:
    result = ReaderResult()
    source_file = relative_name(gt, data_root)
    rows = read_csv_rows(gt, header=False, names=["image", "label"])
    result.rows_in = len(rows)
    for row in rows.to_dict("records"):
        line = row["__line__"]
        if row["image"].strip().lower() in ("image", "image_id"):
            result.reject(source_file, line, None, MALFORMED_ROW, "a header row; ISIC 2016 files have none")
            continue
        label = row["label"].strip().lower()
        if label not in LABELS:
            result.reject(source_file, line, row["image"], UNKNOWN_LABEL,
                          f"label {row['label']!r} not in benign/malignant/0.0/1.0")
            continue
        found = resolve_row_image(result, raw_id=row["image"], folder=images, root=root,
                                  source_file=source_file, row=line, data_root=data_root)
        if found is None:
            continue
        isic_id, image_path = found
        result.records.append(record(
            isic_id=isic_id, source=f"{LAYOUT}:{split}", source_file=source_file, source_row=line,
            image_path=image_path, diagnosis=LABELS[label], diagnosis_raw=row["label"].strip(),
            official_split=split,
        ))
    return result
