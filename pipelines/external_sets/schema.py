"""The one table every external test set is loaded into: its columns, reject reasons and errors.

A loader turns every input row (a CSV row, or an image file for the folder-labelled MClass and
ASAN) into exactly one *record* (`EXTERNAL_COLUMNS`) or one *reject* (`REJECT_COLUMNS`, the same
table the ISIC readers write in `pipelines/lesions/schema.py`); `external_table.ExternalTable`
collects them and checks that nothing is dropped silently.
"""

from __future__ import annotations

import os
from pathlib import Path

EXTERNAL_COLUMNS = (
    "dataset",  # registry name, e.g. "ddi", "derm7pt_clinic"
    "image_id",  # the set's own id (file stem, md5hash, Derm7pt case_num)
    "image_path",  # relative to the data root (posix)
    "label",  # 0/1: the target of the Class-N-Diff paper's Table III for this set (docs/external_sets.md)
    "diagnosis_raw",  # the diagnosis as the set writes it
    "fitzpatrick",  # 1..6 where the set states a single type, else None
    "skin_tone_group",  # "A" (I-II), "B" (III-IV), "C" (V-VI) or "unknown"
    "sex",  # "male" / "female" / None
    "age_approx",  # float, NaN when the set has no age
    "anatom_site_general",  # None: no external set uses the ISIC site vocabulary
    "modality",  # "dermoscopic" / "clinical"
    "source_file",  # CSV (or image folder) the row came from, relative to the data root
    "source_row",  # 1-based line in that CSV (header = line 1); position in the sorted listing for folders
)
REJECT_COLUMNS = ("source_file", "source_row", "isic_id", "reason", "detail")  # isic_id holds the set's id

# Reject reasons: the same strings as the ISIC readers (reports group by them).
MISSING_IMAGE = "missing_image"
UNKNOWN_LABEL = "unknown_label"
MALFORMED_ROW = "malformed_row"
UNSAFE_PATH = "unsafe_path"
# A well-formed row that an optional evaluation filter leaves out (Fitzpatrick17k's Bevan filter).
EXCLUDED_BY_FILTER = "excluded_by_filter"

DERMOSCOPIC = "dermoscopic"
CLINICAL = "clinical"

UNKNOWN_GROUP = "unknown"


def skin_tone_group(fitzpatrick: int | None) -> str:
    """Fitzpatrick type -> the three groups of the DDI paper (DATA.md §3.1: 12 / 34 / 56)."""
    if fitzpatrick is None:
        return UNKNOWN_GROUP
    return {1: "A", 2: "A", 3: "B", 4: "B", 5: "C", 6: "C"}[fitzpatrick]


class RowRejected(Exception):
    """Raised while reading one row; the table turns it into a reject with this reason and detail."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class AccountingError(AssertionError):
    """A loader lost or duplicated input rows (rows_in != records + rejects)."""


def lexical_abspath(path: Path) -> Path:
    """Absolute and normalised without following symlinks (so a symlinked data root keeps its name)."""
    return Path(os.path.abspath(path))
