"""ASAN biopsy subset (Han et al., J Invest Dermatol 2018): clinical photos of Korean patients.

Layout (DATA.md §3.5): the figshare zip's `test-asan test/` folder; Bevan used its `biopsy/` subset,
eight class folders, file names like `ak2_571.JPG` (upper-case extension). `root` holds `biopsy/`,
or `test-asan test/biopsy/`, or is `biopsy/` itself. Target = melanoma only (59 of 852 in Bevan's
asan.csv, DATA.md §3.5); diagnosis_raw = the class folder name.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipelines.external_sets.class_folders import load_class_folders
from pipelines.external_sets.external_table import ExternalTable
from pipelines.external_sets.schema import CLINICAL

BIOPSY = "biopsy"
ZIP_FOLDER = "test-asan test"
CLASSES = {
    "actinickeratosis": 0,
    "basalcellcarcinoma": 0,
    "dermatofibroma": 0,
    "lentigo": 0,
    "malignantmelanoma": 1,
    "pigmentednevus": 0,
    "seborrheickeratosis": 0,
    "squamouscellcarcinoma": 0,
}


def load_asan(root: Path, data_root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(records, rejects) for every image under the ASAN `biopsy/` class folders."""
    root = Path(root)
    table = ExternalTable("asan", root, data_root, CLINICAL)
    return load_class_folders(table, biopsy_folder(root), CLASSES)


def biopsy_folder(root: Path) -> Path:
    if root.name == BIOPSY:
        return root
    for candidate in (root / BIOPSY, root / ZIP_FOLDER / BIOPSY):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"{root}: expected {BIOPSY}/ or '{ZIP_FOLDER}/{BIOPSY}/' with the class folders")
