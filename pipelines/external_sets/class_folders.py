"""Sets labelled by folder (MClass, ASAN): every image file under `<class>/` is one input row."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path, PurePosixPath

import pandas as pd

from pipelines.external_sets.external_table import ExternalTable
from pipelines.external_sets.image_finder import ImageFinder
from pipelines.external_sets.schema import UNKNOWN_LABEL, RowRejected, lexical_abspath

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")  # compared lower-case: ASAN writes `.JPG` (DATA.md §3.5)


def list_image_files(folder: Path) -> list[str]:
    """Every image file under `folder` as a sorted posix path relative to it: the input rows of a
    folder-labelled set. Hidden files and `__MACOSX/` (zip debris) and non-image side files
    (`*.xlsx`, Thumbs.db) are not rows. Symlinked folders are not entered (they could lead outside)."""
    found = []
    for current, folders, files in os.walk(folder):
        folders[:] = [f for f in folders if not f.startswith(".") and f != "__MACOSX"]
        for name in files:
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                found.append((Path(current) / name).relative_to(folder).as_posix())
    return sorted(found)


def load_class_folders(
    table: ExternalTable, folder: Path, classes: dict[str, int]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Records for `folder/<class>/<image>`: label = classes[<class>] (keys lower-case, matched
    case-insensitively), diagnosis_raw = the folder name as on disk.

    source_file is `folder`; source_row is the image's 1-based position in the sorted listing.
    An image outside a known class folder is an unknown_label reject.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: image folder not found (layouts: docs/external_sets.md)")
    images = ImageFinder(folder)
    names = list_image_files(folder)
    for position, name in enumerate(names, start=1):
        build = partial(_class_folder_fields, name, images, classes)
        where = lexical_abspath(folder / name).relative_to(table.root).as_posix()
        table.take(folder, position, PurePosixPath(name).stem, build, where=where)
    return table.finish(len(names), f"{folder.name}/")


def _class_folder_fields(name: str, images: ImageFinder, classes: dict[str, int]) -> dict:
    parts = PurePosixPath(name).parts
    if len(parts) != 2 or parts[0].lower() not in classes:
        raise RowRejected(UNKNOWN_LABEL, f"not inside one of the class folders {sorted(classes)}")
    return {"image": images.find(name), "label": classes[parts[0].lower()], "diagnosis_raw": parts[0]}
