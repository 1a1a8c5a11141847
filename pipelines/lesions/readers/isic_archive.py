"""An ISIC Archive export made by isic-cli (`isic image download ... OUTDIR`) — DATA.md §4.

`OUTDIR/metadata.csv` has `isic_id,attribution,copyright_license` plus the sorted union of metadata keys
of the returned images, so the column set varies per query. Diagnosis: the deepest non-empty of
`diagnosis_1..5` (the current hierarchy), else the pre-2025 `diagnosis` column. `fitzpatrick_skin_type`
(I–VI, when present) is a *known* skin type and wins over the image-based estimate.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.lesions.readers.common import (
    ReaderResult,
    clean,
    parse_age,
    parse_sex,
    read_csv_rows,
    record,
    relative_name,
    require_columns,
    resolve_row_image,
)
from pipelines.lesions.readers.diagnosis_text import diagnosis_from_text
from pipelines.lesions.schema import UNKNOWN_LABEL

LAYOUT = "isic_archive"
FITZPATRICK = {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5, "VI": 6}
LEVELS = [f"diagnosis_{i}" for i in range(1, 6)]


def read_isic_archive(root: Path, data_root: Path) -> ReaderResult:
    path = root / "metadata.csv"
    source_file = relative_name(path, data_root)
    rows = read_csv_rows(path)
    require_columns(rows, ["isic_id"], path)
    result = ReaderResult(rows_in=len(rows))
    for row in rows.to_dict("records"):
        line = row["__line__"]
        levels = [clean(row.get(c)) for c in LEVELS if clean(row.get(c))]
        raw = levels[-1] if levels else clean(row.get("diagnosis"))
        if raw is None:
            result.reject(source_file, line, row["isic_id"], UNKNOWN_LABEL,
                          "no diagnosis: diagnosis_1..5 and diagnosis are all empty")
            continue
        fst_raw = clean(row.get("fitzpatrick_skin_type"))
        if fst_raw is not None and fst_raw.upper() not in FITZPATRICK:
            result.reject(source_file, line, row["isic_id"], UNKNOWN_LABEL,
                          f"fitzpatrick_skin_type {fst_raw!r} not in I..VI")
            continue
        found = resolve_row_image(result, raw_id=row["isic_id"], folder=root, root=root,
                                  source_file=source_file, row=line, data_root=data_root)
        if found is None:
            continue
        isic_id, image_path = found
        result.records.append(record(
            isic_id=isic_id, source=f"{LAYOUT}:export", source_file=source_file, source_row=line,
            image_path=image_path, diagnosis=diagnosis_from_text(raw), diagnosis_raw=raw, official_split=None,
            sex=parse_sex(row.get("sex")), age_approx=parse_age(row.get("age_approx")),
            anatom_site_general=row.get("anatom_site_general"), patient_id=row.get("patient_id"),
            lesion_id=row.get("lesion_id"), fitzpatrick=FITZPATRICK[fst_raw.upper()] if fst_raw else None,
        ))
    return result
