"""Derm7pt, the "Atlas" test sets (Kawahara et al., JBHI 2019): 1,011 cases, one dermoscopic and one
clinical image each.

Layout (DATA.md §3.3): `release_v0/meta/meta.csv`, images at `release_v0/images/<derm or clinic>`
(relative paths such as `NEL/Nel026.jpg`, with mixed-case `.jpg`/`.JPG`: the case-insensitive
fallback of ImageFinder resolves them). `root` may be the folder holding `release_v0/` or
`release_v0/` itself. Bevan's "Atlas Dermoscopic" / "Atlas Clinical" = the same rows read through
the `derm` / `clinic` column; target = melanoma (252 of 1,011).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pandas as pd

from pipelines.external_sets.csv_rows import CsvRow, read_csv_rows
from pipelines.external_sets.external_table import ExternalTable
from pipelines.external_sets.image_finder import ImageFinder
from pipelines.external_sets.schema import CLINICAL, DERMOSCOPIC, UNKNOWN_LABEL, RowRejected

RELEASE = "release_v0"
META_CSV = Path("meta") / "meta.csv"
VIEWS = {"derm": DERMOSCOPIC, "clinic": CLINICAL}
REQUIRED = ("case_num", "diagnosis", "clinic", "derm")
# All 20 diagnosis values of meta.csv (DATA.md §3.3); the 6 starting with "melanoma" are the 252
# melanomas. A value outside this list is rejected rather than guessed.
DIAGNOSES = (
    "clark nevus", "reed or spitz nevus", "seborrheic keratosis", "basal cell carcinoma", "dermal nevus",
    "vascular lesion", "blue nevus", "lentigo", "dermatofibroma", "congenital nevus", "melanosis",
    "combined nevus", "miscellaneous", "recurrent nevus",
    "melanoma", "melanoma (in situ)", "melanoma (less than 0.76 mm)", "melanoma (0.76 to 1.5 mm)",
    "melanoma (more than 1.5 mm)", "melanoma metastasis",
)  # fmt: skip
SEXES = ("female", "male")


def load_derm7pt(root: Path, data_root: Path, *, view: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(records, rejects) for every case of meta.csv, using its `derm` or `clinic` image (`view`)."""
    if view not in VIEWS:
        raise ValueError(f"derm7pt view {view!r}: expected one of {sorted(VIEWS)}")
    release = release_folder(Path(root))
    csv_path = release / META_CSV
    table = ExternalTable(f"derm7pt_{view}", Path(root), data_root, VIEWS[view])
    images = ImageFinder(release / "images")
    _, rows = read_csv_rows(csv_path, REQUIRED)
    for row in rows:
        table.take(csv_path, row.line, row.get("case_num"), partial(_fields, row, images, view))
    return table.finish(len(rows), csv_path.name)


def release_folder(root: Path) -> Path:
    """`root/release_v0` when present (the zip's own folder), else `root` itself."""
    for candidate in (root / RELEASE, root):
        if (candidate / META_CSV).is_file():
            return candidate
    raise FileNotFoundError(
        f"{root}: neither {RELEASE}/{META_CSV.as_posix()} nor {META_CSV.as_posix()} exists"
    )


def _fields(row: CsvRow, images: ImageFinder, view: str) -> dict:
    row.require_well_formed()
    diagnosis = row.get("diagnosis")
    if diagnosis.lower() not in DIAGNOSES:
        raise RowRejected(UNKNOWN_LABEL, f"diagnosis {diagnosis!r} is not one of the 20 Derm7pt diagnoses")
    sex = row.get("sex").lower()
    return {
        "image": images.find(row.get(view)),
        "label": int(diagnosis.lower().startswith("melanoma")),
        "diagnosis_raw": diagnosis,
        "sex": sex if sex in SEXES else None,
    }
