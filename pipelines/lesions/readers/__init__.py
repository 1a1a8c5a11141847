"""One reader per on-disk layout; `params.yaml: lesions.sources` names the layout of each folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipelines.lesions.readers.common import ReaderResult
from pipelines.lesions.readers.isic2016 import read_isic2016
from pipelines.lesions.readers.isic2017 import read_isic2017
from pipelines.lesions.readers.isic2018 import read_ham10000, read_isic2018
from pipelines.lesions.readers.isic2019 import read_isic2019
from pipelines.lesions.readers.isic2020 import read_isic2020
from pipelines.lesions.readers.isic_archive import read_isic_archive

READERS: dict[str, Callable[[Path, Path], ReaderResult]] = {
    "isic2016": read_isic2016,
    "isic2017": read_isic2017,
    "isic2018": read_isic2018,
    "ham10000": read_ham10000,
    "isic2019": read_isic2019,
    "isic2020": read_isic2020,
    "isic_archive": read_isic_archive,
}


def read_source(layout: str, root: Path, data_root: Path) -> ReaderResult:
    """Read one source folder; errors name the folder and the layouts there are."""
    if layout not in READERS:
        raise ValueError(f"unknown layout {layout!r} for {root}; expected one of {sorted(READERS)}")
    if not root.is_dir():
        raise FileNotFoundError(f"source folder {root} (layout {layout}) does not exist")
    result = READERS[layout](root, data_root)
    if result.rows_in == 0:
        raise FileNotFoundError(f"{root}: no {layout} ground-truth file found (see docs/data.md for the layout)")
    result.check_accounting(f"{layout} reader on {root}")
    return result
