"""Reading a metadata CSV row by row, keeping each row's line number and marking malformed rows."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from pipelines.external_sets.schema import MALFORMED_ROW, RowRejected


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
