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

READERS: dict[str, Callable[..., ReaderResult]] = {  # (root, data_root[, duplicates=])
    "isic2016": read_isic2016,
    "isic2017": read_isic2017,
    "isic2018": read_isic2018,
    "ham10000": read_ham10000,
    "isic2019": read_isic2019,
    "isic2020": read_isic2020,
    "isic_archive": read_isic_archive,
}


# Layouts whose reader takes a `duplicates` file (the ISIC 2020 duplicates CSV when it is not in the folder).
TAKES_DUPLICATES = frozenset({"isic2020"})


def read_source(layout: str, root: Path, data_root: Path, duplicates: Path | None = None) -> ReaderResult:
    """Read one source folder; errors name the folder and the layouts there are."""
    if layout not in READERS:
        raise ValueError(f"unknown layout {layout!r} for {root}; expected one of {sorted(READERS)}")
    if duplicates is not None and layout not in TAKES_DUPLICATES:
        raise ValueError(f"{root}: a duplicates file is read for layouts {sorted(TAKES_DUPLICATES)} only, "
                         f"not {layout!r}")
    if not root.is_dir():
        raise FileNotFoundError(f"source folder {root} (layout {layout}) does not exist")
    extra = {"duplicates": duplicates} if duplicates is not None else {}
    result = READERS[layout](root, data_root, **extra)
    if result.rows_in == 0:
        raise FileNotFoundError(f"{root}: no {layout} ground-truth file found (see docs/data.md for the layout)")
    result.check_accounting(f"{layout} reader on {root}")
    return result
