"""Fitzpatrick17k (Groh et al., CVPRW 2021): clinical atlas photos with a human Fitzpatrick type 1..6.

Layout: `root/fitzpatrick17k.csv` and the images downloaded from its `url` column as
`root/images/<md5hash>.jpg` (Groh's naming; DATA.md §3.2 — the images are not distributed).
Target = `three_partition_label == "malignant"` (Class-N-Diff Table III); this includes actinic
keratosis (175 images, DATA.md §3.2). `bevan_filter=True` applies Bevan's evaluation subset instead.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pandas as pd

from pipelines.external_sets.csv_rows import CsvRow, read_csv_rows
from pipelines.external_sets.external_table import ExternalTable
from pipelines.external_sets.image_finder import ImageFinder
from pipelines.external_sets.schema import CLINICAL, EXCLUDED_BY_FILTER, MALFORMED_ROW, UNKNOWN_LABEL, RowRejected

CSV_NAME = "fitzpatrick17k.csv"
IMAGE_DIR = "images"
REQUIRED = ("md5hash", "label", "three_partition_label")
# Current header has `fitzpatrick_scale` (Scale AI) and `fitzpatrick_centaur`; the April-2021 file
# has a leading index column and a single `fitzpatrick` (still used by Bevan's code) (DATA.md §3.2).
FST_COLUMNS = ("fitzpatrick_scale", "fitzpatrick")
THREE_PARTITION = {"malignant": 1, "benign": 0, "non-neoplastic": 0}
# Bevan's filter (DATA.md §3.2): drop non-neoplastic, drop qc "3 Wrongly labelled", require a URL,
# drop FST -1 -> 4,311 rows, 2,157 malignant on the official CSV.
WRONGLY_LABELLED = "3 Wrongly labelled"


def load_fitzpatrick17k(
    root: Path, data_root: Path, *, bevan_filter: bool = False, image_dir: str = IMAGE_DIR
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(records, rejects) for every row of `root/fitzpatrick17k.csv`; filtered rows are rejects too."""
    root = Path(root)
    csv_path = root / CSV_NAME
    table = ExternalTable("fitzpatrick17k", root, data_root, CLINICAL)
    images = ImageFinder(root / image_dir)
    header, rows = read_csv_rows(csv_path, REQUIRED)
    fst_column = _fst_column(header, csv_path)
    for row in rows:
        build = partial(_fields, row, images, fst_column, bevan_filter)
        table.take(csv_path, row.line, row.get("md5hash"), build)
    return table.finish(len(rows), csv_path.name)


def _fst_column(header: list[str], csv_path: Path) -> str:
    for column in FST_COLUMNS:
        if column in header:
            return column
    raise ValueError(f"{csv_path} line 1: no Fitzpatrick column; expected one of {list(FST_COLUMNS)}")


def _fields(row: CsvRow, images: ImageFinder, fst_column: str, bevan_filter: bool) -> dict:
    row.require_well_formed()
    if not row.get("md5hash"):
        raise RowRejected(MALFORMED_ROW, "empty md5hash")
    partition = row.get("three_partition_label")
    if partition not in THREE_PARTITION:
        raise RowRejected(
            UNKNOWN_LABEL, f"three_partition_label {partition!r} not in {sorted(THREE_PARTITION)}"
        )
    fitzpatrick = parse_fitzpatrick(row.get(fst_column), fst_column)
    if bevan_filter:
        _apply_bevan_filter(row, partition, fitzpatrick)
    return {
        "image": images.find(row.get("md5hash") + ".jpg"),
        "label": THREE_PARTITION[partition],
        "diagnosis_raw": row.get("label"),
        "fitzpatrick": fitzpatrick,
    }


def parse_fitzpatrick(value: str, column: str) -> int | None:
    """`1`..`6` (or `3.0` after a float re-save) -> int; `-1` (unknown, DATA.md §3.2) -> None."""
    text = value.removesuffix(".0")
    if text == "-1":
        return None
    if text in ("1", "2", "3", "4", "5", "6"):
        return int(text)
    raise RowRejected(UNKNOWN_LABEL, f"{column} {value!r} not in {{-1, 1..6}}")


def _apply_bevan_filter(row: CsvRow, partition: str, fitzpatrick: int | None) -> None:
    if partition == "non-neoplastic":
        reason = "three_partition_label 'non-neoplastic'"
    elif row.get("qc") == WRONGLY_LABELLED:
        reason = f"qc {WRONGLY_LABELLED!r}"
    elif not row.get("url"):
        reason = "no url"
    elif fitzpatrick is None:
        reason = "Fitzpatrick type unknown (-1)"
    else:
        return
    raise RowRejected(EXCLUDED_BY_FILTER, f"Bevan filter: {reason}")
