"""What every ISIC layout reader shares: id normalisation, safe image lookup, and the result type.

A reader never opens an image for decoding (the image scan does that, once per image); it only
checks that the file exists *inside the data root*. An id that would resolve outside the root (e.g.
`../../etc/passwd`) is rejected before any file-system call touches the path.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipelines.lesions.schema import (
    DOWNSAMPLED_SUFFIX,
    ISIC_ID,
    MALFORMED_ROW,
    MISSING_IMAGE,
    RECORD_COLUMNS,
    REJECT_COLUMNS,
    UNSAFE_PATH,
)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")


@dataclass
class ReaderResult:
    """Rows of one source: parsed records, rejects, and how many input rows there were."""

    records: list[dict] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)
    rows_in: int = 0

    def reject(self, source_file: str, row: int, isic_id: str | None, reason: str, detail: str) -> None:
        self.rejects.append(
            {"source_file": source_file, "source_row": row, "isic_id": isic_id, "reason": reason, "detail": detail}
        )

    def extend(self, other: ReaderResult) -> None:
        self.records += other.records
        self.rejects += other.rejects
        self.rows_in += other.rows_in

    def records_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.records, columns=list(RECORD_COLUMNS))

    def rejects_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rejects, columns=list(REJECT_COLUMNS))

    def check_accounting(self, name: str) -> None:
        """Every input row is either a record or a reject: nothing is silently dropped."""
        if self.rows_in != len(self.records) + len(self.rejects):
            raise AssertionError(
                f"{name}: {self.rows_in} rows in but {len(self.records)} records + {len(self.rejects)} rejects"
            )


def strip_id(raw: str) -> str:
    """ISIC 2019 names some images `ISIC_0000017_downsampled`; the stripped id is the 2016/2017 id."""
    raw = raw.strip()
    return raw[: -len(DOWNSAMPLED_SUFFIX)] if raw.endswith(DOWNSAMPLED_SUFFIX) else raw


def relative_name(path: Path, data_root: Path) -> str:
    """`path` relative to the data root when it lies inside it (posix), else absolute.

    Lexical (no symlink resolution): a download symlinked into `data/raw/` keeps paths under the root.
    """
    absolute, root = Path(os.path.abspath(path)), Path(os.path.abspath(data_root))
    try:
        return absolute.relative_to(root).as_posix()
    except ValueError:
        return absolute.as_posix()


def is_safe_name(name: str) -> bool:
    """An image name from a CSV may only name a file in its folder: no separators, no `..`, no root."""
    return bool(name) and "/" not in name and "\\" not in name and name not in (".", "..") and "\x00" not in name


def find_image(folder: Path, name: str, extensions: Iterable[str] = IMAGE_EXTENSIONS) -> Path | None:
    """The image file `folder/name.<ext>` if it exists. `name` must already be checked with is_safe_name."""
    for ext in extensions:
        candidate = folder / f"{name}{ext}"
        if candidate.is_file():
            return candidate
    return None


def read_csv_rows(path: Path, header: bool = True, names: list[str] | None = None) -> pd.DataFrame:
    """Read a ground-truth/metadata CSV as strings, keeping the 1-based line number of every row.

    All official ISIC CSVs are CRLF (DATA.md): pandas reads universal newlines. Values stay strings
    (`0.0`/`1.0` labels, empty ages) so each reader decides what a value means and rejects what it
    does not understand.
    """
    frame = pd.read_csv(
        path,
        header=0 if header else None,
        names=names,
        dtype=str,
        keep_default_na=False,
        skip_blank_lines=True,
        on_bad_lines="error",
    )
    frame.columns = [str(c).strip() for c in frame.columns]
    frame["__line__"] = range(2 if header else 1, len(frame) + (2 if header else 1))
    return frame


def require_columns(frame: pd.DataFrame, required: Iterable[str], path: Path) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {list(frame.columns[:-1])}")


def folder_label(folder: Path, root: Path) -> str:
    """How a reject's detail names an image folder: relative to the source folder, posix, ending in `/`.

    Never absolute, so `rejects.parquet` is the same on every machine and for every checkout location.
    """
    try:
        relative = Path(os.path.abspath(folder)).relative_to(os.path.abspath(root)).as_posix()
    except ValueError:
        relative = folder.name
    return "./" if relative == "." else f"{relative}/"


def resolve_row_image(
    result: ReaderResult,
    *,
    raw_id: str,
    folder: Path,
    root: Path,
    source_file: str,
    row: int,
    data_root: Path,
) -> tuple[str, str] | None:
    """Validate a row's id and locate its image. Returns (stripped id, image path) or None (rejected).

    `root` is the source folder (the `path` of `lesions.sources`): details name `folder` relative to it.
    """
    if not is_safe_name(raw_id):
        result.reject(source_file, row, raw_id, UNSAFE_PATH,
                      f"image name {raw_id!r} would leave {folder_label(folder, root)}")
        return None
    isic_id = strip_id(raw_id)
    if not ISIC_ID.match(isic_id):
        result.reject(source_file, row, raw_id, MALFORMED_ROW, f"id {raw_id!r} does not match ISIC_ + 7 digits")
        return None
    image = find_image(folder, raw_id)
    if image is None:
        result.reject(source_file, row, isic_id, MISSING_IMAGE,
                      f"no image {raw_id}.jpg in {folder_label(folder, root)}")
        return None
    return isic_id, relative_name(image, data_root)


def clean(value: str | None) -> str | None:
    """Empty and the ISIC 'unknown' spellings mean missing."""
    if value is None:
        return None
    value = value.strip()
    return None if value == "" or value.lower() in ("unknown", "nan", "na") else value


def parse_sex(value: str | None) -> str | None:
    value = clean(value)
    return value.lower() if value and value.lower() in ("male", "female") else None


def parse_age(value: str | None) -> float:
    value = clean(value)
    try:
        return float(value) if value is not None else float("nan")
    except ValueError:
        return float("nan")


def record(
    *,
    isic_id: str,
    source: str,
    source_file: str,
    source_row: int,
    image_path: str,
    diagnosis: str,
    diagnosis_raw: str,
    official_split: str | None,
    sex: str | None = None,
    age_approx: float = float("nan"),
    anatom_site_general: str | None = None,
    patient_id: str | None = None,
    lesion_id: str | None = None,
    fitzpatrick: int | None = None,
    duplicate_of: str | None = None,
) -> dict:
    site = clean(anatom_site_general)
    return {
        "isic_id": isic_id,
        "source": source,
        "source_file": source_file,
        "source_row": source_row,
        "image_path": image_path,
        "diagnosis": diagnosis,
        "diagnosis_raw": diagnosis_raw,
        "sex": sex,
        "age_approx": age_approx,
        "anatom_site_general": site.lower() if site else None,
        "patient_id": clean(patient_id),
        "lesion_id": clean(lesion_id),
        "fitzpatrick": fitzpatrick,
        "official_split": official_split,
        "duplicate_of": duplicate_of,
    }
