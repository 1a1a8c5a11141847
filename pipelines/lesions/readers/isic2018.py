"""ISIC 2018 Task 3 (= HAM10000) — DATA.md §1.3.

Challenge layout: one-hot `image,MEL,NV,BCC,AKIEC,BKL,DF,VASC` (floats as text; newer test files add
`score_weight`/`validation_weight`, ignored), ground truth inside a `..._GroundTruth/` folder (as
unzipped) or beside it. `HAM10000_metadata.csv` (`lesion_id,image_id,dx,dx_type,age,sex,localization`),
when present, adds lesion ids, sex, age and site.

HAM10000 layout (Dataverse/Kaggle): `HAM10000_images_part_{1,2}/` + `HAM10000_metadata.csv`, labels
from `dx`. AKIEC stays AKIEC here: ISIC 2019 later splits it into AK and SCC (see merge rules).
"""

from __future__ import annotations

from pathlib import Path

from pipelines.lesions.readers.common import (
    ReaderResult,
    find_image,
    is_safe_name,
    parse_age,
    parse_sex,
    read_csv_rows,
    record,
    relative_name,
    require_columns,
    resolve_row_image,
)
from pipelines.lesions.readers.isic2019 import read_metadata, read_onehot_file
from pipelines.lesions.schema import UNKNOWN_LABEL

LAYOUT = "isic2018"
CLASSES = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
SPLITS = (("train", "Training"), ("val", "Validation"), ("test", "Test"))
HAM_METADATA = "HAM10000_metadata.csv"
HAM_DX = {"mel": "MEL", "nv": "NV", "bcc": "BCC", "akiec": "AKIEC", "bkl": "BKL", "df": "DF", "vasc": "VASC"}


def read_isic2018(root: Path, data_root: Path) -> ReaderResult:
    result = ReaderResult()
    metadata = read_metadata(root / HAM_METADATA)
    for split, name in SPLITS:
        stem = f"ISIC2018_Task3_{name}_GroundTruth"
        for gt in (root / stem / f"{stem}.csv", root / f"{stem}.csv"):
            if gt.is_file():
                images = root / f"ISIC2018_Task3_{name}_Input"
                result.extend(read_onehot_file(gt, images, split, metadata, root, data_root, LAYOUT, CLASSES))
                break
    return result


def read_ham10000(root: Path, data_root: Path) -> ReaderResult:
    """The Dataverse/Kaggle HAM10000 layout: labels from `dx`, images split over two folders."""
    result = ReaderResult()
    path = root / HAM_METADATA
    source_file = relative_name(path, data_root)
    rows = read_csv_rows(path)
    require_columns(rows, ["lesion_id", "image_id", "dx"], path)
    result.rows_in = len(rows)
    folders = [root / "HAM10000_images_part_1", root / "HAM10000_images_part_2", root / "images", root]
    for row in rows.to_dict("records"):
        line = row["__line__"]
        dx = row["dx"].strip().lower()
        if dx not in HAM_DX:
            result.reject(source_file, line, row["image_id"], UNKNOWN_LABEL,
                          f"dx {row['dx']!r} not in {sorted(HAM_DX)}")
            continue
        name = row["image_id"].strip()
        folder = next((f for f in folders if is_safe_name(name) and find_image(f, name)), folders[0])
        found = resolve_row_image(result, raw_id=name, folder=folder, root=root, source_file=source_file,
                                  row=line, data_root=data_root)
        if found is None:
            continue
        isic_id, image_path = found
        result.records.append(record(
            isic_id=isic_id, source="ham10000:train", source_file=source_file, source_row=line,
            image_path=image_path, diagnosis=HAM_DX[dx], diagnosis_raw=row["dx"].strip(), official_split="train",
            sex=parse_sex(row.get("sex")), age_approx=parse_age(row.get("age")),
            anatom_site_general=row.get("localization"), lesion_id=row.get("lesion_id"),
        ))
    return result
