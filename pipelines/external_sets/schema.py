"""The one table every external test set is loaded into, and the bookkeeping each loader shares.

A loader turns every input row (a CSV row, or an image file for the folder-labelled MClass and
ASAN) into exactly one *record* (`EXTERNAL_COLUMNS`) or one *reject* (`REJECT_COLUMNS`, the same
table the ISIC readers write in `pipelines/lesions/schema.py`). `ExternalTable.finish` refuses to
return when `rows_in != len(records) + len(rejects)`: nothing is dropped silently.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath

import pandas as pd

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


@dataclass
class ExternalTable:
    """Collects one external set's records and rejects and checks that every input row is accounted for."""

    dataset: str
    root: Path  # the set's own folder (inside data_root)
    data_root: Path
    modality: str
    records: list[dict] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root = lexical_abspath(self.root)
        self.data_root = lexical_abspath(self.data_root)
        if not self.root.is_relative_to(self.data_root):
            raise ValueError(
                f"{self.dataset}: set folder {self.root} is not inside data root {self.data_root} "
                "(image_path and source_file are stored relative to the data root)"
            )

    def relative(self, path: Path) -> str:
        """`path` relative to the data root (posix)."""
        return lexical_abspath(path).relative_to(self.data_root).as_posix()

    def where(self, source: Path, row: int) -> str:
        """How an error names its input: `ddi_metadata.csv line 7` (path relative to the set folder)."""
        return f"{lexical_abspath(source).relative_to(self.root).as_posix()} line {row}"

    def take(
        self,
        source: Path,
        row: int,
        image_id: str | None,
        build: Callable[[], dict],
        where: str | None = None,
    ) -> None:
        """Run `build` for one input row: its fields become a record, a RowRejected becomes a reject."""
        try:
            fields = build()
        except RowRejected as rejected:
            self.rejects.append(
                {
                    "source_file": self.relative(source),
                    "source_row": row,
                    "isic_id": image_id,
                    "reason": rejected.reason,
                    "detail": f"{where or self.where(source, row)}: {rejected.detail}",
                }
            )
            return
        self.records.append(self._record(image_id, source, row, **fields))

    def _record(
        self,
        image_id: str | None,
        source: Path,
        row: int,
        *,
        image: Path,
        label: int,
        diagnosis_raw: str,
        fitzpatrick: int | None = None,
        group: str | None = None,
        sex: str | None = None,
        age_approx: float = math.nan,
    ) -> dict:
        return {
            "dataset": self.dataset,
            "image_id": image_id,
            "image_path": self.relative(image),
            "label": label,
            "diagnosis_raw": diagnosis_raw,
            "fitzpatrick": fitzpatrick,
            "skin_tone_group": group if group is not None else skin_tone_group(fitzpatrick),
            "sex": sex,
            "age_approx": age_approx,
            "anatom_site_general": None,
            "modality": self.modality,
            "source_file": self.relative(source),
            "source_row": row,
        }

    def finish(self, rows_in: int, what: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(records, rejects) as frames, after checking that every one of the `rows_in` rows was kept."""
        if rows_in != len(self.records) + len(self.rejects):
            raise AccountingError(
                f"{self.dataset}: {what} has {rows_in} input rows but the loader produced "
                f"{len(self.records)} records + {len(self.rejects)} rejects; expected them to add up"
            )
        records = pd.DataFrame(self.records, columns=list(EXTERNAL_COLUMNS)).astype(
            {"label": "int64", "fitzpatrick": "Int64", "age_approx": "float64", "source_row": "int64"}
        )
        rejects = pd.DataFrame(self.rejects, columns=list(REJECT_COLUMNS)).astype({"source_row": "int64"})
        return records, rejects


# --- reading a metadata CSV row by row ---------------------------------------------------------------


@dataclass(frozen=True)
class CsvRow:
    """One data row of a metadata CSV, with the line it starts on and why it is malformed (if it is)."""

    line: int  # 1-based; the header is line 1
    values: dict[str, str]  # header name -> field, stripped (partial when the field count is wrong)
    problem: str | None = None

    def get(self, column: str) -> str:
        return self.values.get(column, "")

    def require_well_formed(self) -> None:
        if self.problem is not None:
            raise RowRejected(MALFORMED_ROW, self.problem)


def _decode(path: Path) -> str:
    """UTF-8 (BOM tolerated); Latin-1 as the fallback because it decodes every byte (free-text columns)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_csv_rows(path: Path, required: tuple[str, ...]) -> tuple[list[str], list[CsvRow]]:
    """The header and every non-blank data row of `path`, keeping each row's real starting line number.

    The csv module (not pandas) so that a row with the wrong number of fields becomes a malformed
    row instead of failing the whole file, and so that line numbers stay right across quoted
    newlines. Universal newlines: the ISIC CSVs are CRLF, Fitzpatrick17k's is LF (DATA.md cross-cutting
    facts and §3.2), so both must read the same.
    A header without the `required` columns fails the whole file: that is a layout error, not a row error.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: metadata CSV not found (layouts: docs/external_sets.md)")
    reader = csv.reader(io.StringIO(_decode(path), newline=""))
    header = [name.strip() for name in next(reader, [])]
    missing = [name for name in required if name not in header]
    if missing:
        raise ValueError(
            f"{path} line 1: header {header} lacks column(s) {missing}; expected {list(required)}"
        )
    rows: list[CsvRow] = []
    line = reader.line_num + 1
    for fields in reader:
        start, line = line, reader.line_num + 1
        if not fields:
            continue  # an empty line: pandas skips these too, so they are not rows
        # strict=False on purpose: a short or long row still yields its leading fields (for its id).
        values = {name: value.strip() for name, value in zip(header, fields, strict=False)}
        problem = None
        if len(fields) != len(header):
            problem = f"expected {len(header)} fields (as in the header), found {len(fields)}"
        rows.append(CsvRow(start, values, problem))
    return header, rows


# --- finding an image file safely ----------------------------------------------------------------------


class ImageFinder:
    """Finds image files named by metadata, never touching anything outside `base`.

    A name is first checked lexically (absolute paths, `..` escapes, NUL bytes) without any
    file-system call; then the resolved path (symlinks followed) must still lie inside `base`; only
    then is the file looked at. When the exact name is absent, each path component is matched
    case-insensitively (Derm7pt's mixed `.jpg`/`.JPG`, DATA.md §3.3); listings are cached.
    """

    def __init__(self, base: Path) -> None:
        self.base = lexical_abspath(base)
        self._real_base = self.base.resolve()
        self._listings: dict[Path, dict[str, list[str]]] = {}

    def find(self, name: str) -> Path:
        """The file `base/name` (lexical path, possibly with corrected case), or raise RowRejected."""
        if not name or "\x00" in name:
            raise RowRejected(MALFORMED_ROW, f"image name {name!r} is empty or contains a NUL byte")
        candidate = Path(os.path.normpath(self.base / name))
        if Path(name).is_absolute() or not candidate.is_relative_to(self.base):
            raise RowRejected(UNSAFE_PATH, f"image name {name!r} would resolve outside {self.base.name}/")
        self._check_contained(candidate, name)
        if candidate.is_file():
            return candidate
        matched = self._match_case_insensitively(candidate, name)
        if matched is None:
            raise RowRejected(MISSING_IMAGE, f"image {name!r} not found in {self.base.name}/")
        return matched

    def contains(self, path: Path) -> bool:
        """Whether `path` (symlinks followed) lies inside `base`."""
        try:
            return path.resolve().is_relative_to(self._real_base)
        except (OSError, RuntimeError):  # symlink loop
            return False

    def _check_contained(self, path: Path, name: str) -> None:
        if not self.contains(path):
            raise RowRejected(
                UNSAFE_PATH, f"image name {name!r} resolves outside {self.base.name}/ (symlink)"
            )

    def _match_case_insensitively(self, candidate: Path, name: str) -> Path | None:
        current = self.base
        for part in candidate.relative_to(self.base).parts:
            exact = current / part
            if exact.exists():
                current = exact
            else:
                matches = self._listing(current).get(part.lower(), [])
                if len(matches) != 1:  # none, or ambiguous (`a.jpg` and `a.JPG` both there)
                    return None
                current = current / matches[0]
            self._check_contained(current, name)
        return current if current.is_file() else None

    def _listing(self, folder: Path) -> dict[str, list[str]]:
        if folder not in self._listings:
            names: dict[str, list[str]] = {}
            if folder.is_dir():
                for entry in sorted(os.listdir(folder)):
                    names.setdefault(entry.lower(), []).append(entry)
            self._listings[folder] = names
        return self._listings[folder]


# --- sets labelled by folder (MClass, ASAN) -----------------------------------------------------------

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
