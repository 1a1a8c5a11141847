"""ISIC 2019 Task 1 — DATA.md §1.4.

Header `image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK` (floats as text, exactly one 1.0 per row); metadata
`image,age_approx,anatom_site_general,lesion_id,sex` in the same row order. 2,074 training names carry
`_downsampled`, in the CSV and in the file name: the file is looked up by the raw name, the id is stripped.
The test ground truth is not public everywhere; it is read when present.
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
from pipelines.lesions.readers.onehot import decode_onehot
from pipelines.lesions.schema import UNKNOWN_LABEL

LAYOUT = "isic2019"
CLASSES = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"]
SPLITS = (
    ("train", "ISIC_2019_Training_GroundTruth.csv", "ISIC_2019_Training_Metadata.csv", "ISIC_2019_Training_Input"),
    ("test", "ISIC_2019_Test_GroundTruth.csv", "ISIC_2019_Test_Metadata.csv", "ISIC_2019_Test_Input"),
)


def read_isic2019(root: Path, data_root: Path) -> ReaderResult:
    result = ReaderResult()
    for split, gt_name, meta_name, image_dir in SPLITS:
        gt = root / gt_name
        if gt.is_file():
            metadata = read_metadata(root / meta_name)
            result.extend(read_onehot_file(gt, root / image_dir, split, metadata, root, data_root, LAYOUT,
                                            CLASSES))
    return result


def read_metadata(path: Path) -> dict[str, dict]:
    """Metadata rows by stripped id (2019 `image`, HAM10000 `image_id`); empty when the file is absent."""
    if not path.is_file():
        return {}
    rows = read_csv_rows(path)
    key = "image" if "image" in rows.columns else "image_id"
    return {strip_id(r[key]): r for r in rows.to_dict("records")} if key in rows.columns else {}


def read_onehot_file(
    gt: Path,
    images: Path,
    split: str,
    metadata: dict[str, dict],
    root: Path,
    data_root: Path,
    layout: str,
    classes: list[str],
) -> ReaderResult:
    """A one-hot ground-truth file (2018 Task 3 and 2019 Task 1 share this shape)."""
    result = ReaderResult()
    source_file = relative_name(gt, data_root)
    rows = read_csv_rows(gt)
    present = [c for c in classes if c in rows.columns]
    # 2019's UNK column may be absent from re-saved copies; every other class must be there.
    require_columns(rows, ["image", *[c for c in classes if c != "UNK"]], gt)
    result.rows_in = len(rows)
    for row in rows.to_dict("records"):
        line = row["__line__"]
        diagnosis, raw = decode_onehot(row, present)
        if diagnosis is None:
            result.reject(source_file, line, row["image"], UNKNOWN_LABEL,
                          f"one-hot {','.join(present)} = {raw}: expected exactly one 1.0")
            continue
        found = resolve_row_image(result, raw_id=row["image"], folder=images, root=root,
                                  source_file=source_file, row=line, data_root=data_root)
        if found is None:
            continue
        isic_id, image_path = found
        meta = metadata.get(isic_id, {})
        result.records.append(record(
            isic_id=isic_id, source=f"{layout}:{split}", source_file=source_file, source_row=line,
            image_path=image_path, diagnosis=diagnosis, diagnosis_raw=diagnosis, official_split=split,
            sex=parse_sex(meta.get("sex")),
            age_approx=parse_age(meta.get("age_approx", meta.get("age"))),
            anatom_site_general=meta.get("anatom_site_general", meta.get("localization")),
            lesion_id=meta.get("lesion_id"),
        ))
    return result
