"""One external set's records and rejects, collected row by row and checked to add up.

`ExternalTable.finish` refuses to return when `rows_in != len(records) + len(rejects)`: nothing is
dropped silently.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipelines.external_sets.schema import (
    EXTERNAL_COLUMNS,
    REJECT_COLUMNS,
    AccountingError,
    RowRejected,
    lexical_abspath,
    skin_tone_group,
)


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
