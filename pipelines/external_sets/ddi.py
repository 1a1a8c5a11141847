"""DDI, Diverse Dermatology Images (Daneshjou et al., Sci. Adv. 2022): clinical photos, FST in 3 groups.

Layout (DATA.md §3.1): one folder with `000001.png … 000656.png` and `ddi_metadata.csv`; the image
is `root/DDI_file`. Target = the file's own `malignant` column (Class-N-Diff Table III).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path, PurePosixPath

import pandas as pd

from pipelines.external_sets.csv_rows import CsvRow, read_csv_rows
from pipelines.external_sets.external_table import ExternalTable
from pipelines.external_sets.image_finder import ImageFinder
from pipelines.external_sets.schema import CLINICAL, UNKNOWN_LABEL, RowRejected

CSV_NAME = "ddi_metadata.csv"
# The copies start with an unnamed pandas index column (header `,DDI_ID,...`, DATA.md §3.1); it is
# not required, so a file saved without it reads the same.
REQUIRED = ("DDI_ID", "DDI_file", "skin_tone", "malignant", "disease")
# skin_tone codes the FST pair: 12 = I-II, 34 = III-IV, 56 = V-VI (DATA.md §3.1).
SKIN_TONE_GROUPS = {"12": "A", "34": "B", "56": "C"}
# Printed TRUE/FALSE in both copies found, possibly True/False in the pristine file (DATA.md §3.1).
MALIGNANT = {"true": 1, "false": 0}


def load_ddi(root: Path, data_root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(records, rejects) for every row of `root/ddi_metadata.csv`."""
    root = Path(root)
    csv_path = root / CSV_NAME
    table = ExternalTable("ddi", root, data_root, CLINICAL)
    images = ImageFinder(root)
    _, rows = read_csv_rows(csv_path, REQUIRED)
    for row in rows:
        table.take(csv_path, row.line, image_id(row), partial(_fields, row, images))
    return table.finish(len(rows), csv_path.name)


def image_id(row: CsvRow) -> str:
    """The file stem (`000001`): what prediction files key DDI images by."""
    return PurePosixPath(row.get("DDI_file")).stem or row.get("DDI_ID")


def _fields(row: CsvRow, images: ImageFinder) -> dict:
    row.require_well_formed()
    tone = _integral_text(row.get("skin_tone"))
    if tone not in SKIN_TONE_GROUPS:
        raise RowRejected(UNKNOWN_LABEL, f"skin_tone {row.get('skin_tone')!r} not in {{12, 34, 56}}")
    malignant = row.get("malignant")
    if malignant.lower() not in MALIGNANT:
        raise RowRejected(UNKNOWN_LABEL, f"malignant {malignant!r} not TRUE/FALSE (any case)")
    return {
        "image": images.find(row.get("DDI_file")),
        "label": MALIGNANT[malignant.lower()],
        "diagnosis_raw": row.get("disease"),
        # DDI gives only the pair, never a single type: fitzpatrick stays None.
        "group": SKIN_TONE_GROUPS[tone],
    }


def _integral_text(value: str) -> str:
    """`56` and `56.0` (a float re-save) both mean 56."""
    return value.removesuffix(".0")
