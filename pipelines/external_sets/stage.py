"""The `external_sets` stage: every configured external test set -> one table + its rejects."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipelines.atomic_files import write_json, write_parquet
from pipelines.config import Params
from pipelines.external_sets.registry import load_external_set
from pipelines.external_sets.schema import EXTERNAL_COLUMNS, REJECT_COLUMNS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExternalSetsOutputs:
    table: Path
    rejects: Path
    report: Path
    summary: dict


def output_paths(params: Params) -> dict[str, Path]:
    out = params.path(params.external_sets.out)
    return {"table": out / "external_sets.parquet", "rejects": out / "rejects.parquet", "report": out / "report.json"}


def build_external_sets(params: Params) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    data_root = Path(params.data_root)
    tables, rejects = [pd.DataFrame(columns=list(EXTERNAL_COLUMNS))], [pd.DataFrame(columns=list(REJECT_COLUMNS))]
    for spec in params.external_sets.sets:
        root = params.path(spec.path)
        if not root.is_dir():
            raise FileNotFoundError(f"external set {spec.name!r}: folder {root} does not exist "
                                    f"(params.yaml external_sets.sets; see docs/external_sets.md)")
        records, rejected = load_external_set(spec.name, root, data_root, **spec.options)
        log.info("%s: %d images, %d rejects", spec.name, len(records), len(rejected))
        tables.append(records)
        rejects.append(rejected.assign(dataset=spec.name) if len(rejected) else rejected)
    table = pd.concat([t for t in tables if len(t)] or tables[:1], ignore_index=True)
    rejected = pd.concat([r for r in rejects if len(r)] or rejects[:1], ignore_index=True)
    summary = {
        "sets": [s.name for s in params.external_sets.sets],
        "images": table.groupby("dataset").size().to_dict() if len(table) else {},
        "malignant": table.groupby("dataset")["label"].sum().astype(int).to_dict() if len(table) else {},
        "by_skin_tone": {d: f["skin_tone_group"].value_counts().sort_index().to_dict()
                         for d, f in table.groupby("dataset")} if len(table) else {},
        "rejects_by_reason": rejected["reason"].value_counts().sort_index().to_dict() if len(rejected) else {},
    }
    return table, rejected, summary


def run_external_sets(params: Params) -> ExternalSetsOutputs:
    table, rejected, summary = build_external_sets(params)
    paths = output_paths(params)
    write_parquet(table, paths["table"])
    write_parquet(rejected, paths["rejects"])
    write_json(summary, paths["report"])
    return ExternalSetsOutputs(summary=summary, **paths)
