"""ISIC 2017 Part 3 — DATA.md §1.2.

Header `image_id,melanoma,seborrheic_keratosis` with `0.0`/`1.0`; nevus = both 0, never both 1.
Each image folder holds `ISIC-2017_<Split>_Data_metadata.csv` (`image_id,age_approximate,sex`) and
superpixel PNGs next to the JPEGs, which are not images of the set (only `.jpg` is looked up).
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
from pipelines.lesions.readers.onehot import ONE, ZERO
from pipelines.lesions.schema import UNKNOWN_LABEL

LAYOUT = "isic2017"
SPLITS = (("train", "Training"), ("val", "Validation"), ("test", "Test_v2"))


def read_isic2017(root: Path, data_root: Path) -> ReaderResult:
    result = ReaderResult()
    for split, name in SPLITS:
        gt = root / f"ISIC-2017_{name}_Part3_GroundTruth.csv"
        if gt.is_file():
            images = root / f"ISIC-2017_{name}_Data"
            metadata = _metadata(images / f"ISIC-2017_{name}_Data_metadata.csv")
            result.extend(_read_file(gt, images, split, metadata, root, data_root))
    return result


def _metadata(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    rows = read_csv_rows(path)
    return {strip_id(r["image_id"]): r for r in rows.to_dict("records")} if "image_id" in rows else {}


def _read_file(gt: Path, images: Path, split: str, metadata: dict[str, dict], root: Path,
               data_root: Path) -> ReaderResult:
    result = ReaderResult()
    source_file = relative_name(gt, data_root)
    rows = read_csv_rows(gt)
    require_columns(rows, ["image_id", "melanoma", "seborrheic_keratosis"], gt)
    result.rows_in = len(rows)
    for row in rows.to_dict("records"):
        line = row["__line__"]
        mel, sk = row["melanoma"].strip(), row["seborrheic_keratosis"].strip()
        raw = f"melanoma={mel},seborrheic_keratosis={sk}"
        if mel not in ONE | ZERO or sk not in ONE | ZERO or (mel in ONE and sk in ONE):
            result.reject(source_file, line, row["image_id"], UNKNOWN_LABEL,
                          f"{raw}: expected 0.0/1.0 with at most one 1.0")
            continue
        diagnosis = "MEL" if mel in ONE else "BKL" if sk in ONE else "NV"
        found = resolve_row_image(result, raw_id=row["image_id"], folder=images, root=root,
                                  source_file=source_file, row=line, data_root=data_root)
        if found is None:
            continue
        isic_id, image_path = found
        meta = metadata.get(isic_id, {})
        result.records.append(record(
            isic_id=isic_id, source=f"{LAYOUT}:{split}", source_file=source_file, source_row=line,
            image_path=image_path, diagnosis=diagnosis, diagnosis_raw=raw, official_split=split,
            sex=parse_sex(meta.get("sex")), age_approx=parse_age(meta.get("age_approximate")),
        ))
    return result
