"""The `lesions` stage: every configured ISIC source -> one validated-ready table + a rejects table.

read (one reader per layout) -> merge by id (merge.py) -> decode each kept image once (hash, size,
corruption, skin tone; image_scan.py) -> skin-tone group (a known Fitzpatrick type wins) -> splits.
Accounting, asserted: rows in = kept + merged duplicates + rejected.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipelines.atomic_files import write_json, write_parquet
from pipelines.config import Params
from pipelines.lesions.image_scan import scan_images
from pipelines.lesions.merge import merge_records
from pipelines.lesions.readers import read_source
from pipelines.lesions.sample_grid import sample_grid
from pipelines.lesions.schema import CORRUPT_IMAGE, LESION_COLUMNS, REJECT_COLUMNS
from pipelines.lesions.splits import assign_splits

log = logging.getLogger(__name__)


class NoLesionsError(ValueError):
    """Every input row was rejected: there is no table to build (a wrong folder or layout, usually)."""


@dataclass(frozen=True)
class LesionsOutputs:
    lesions: Path
    rejects: Path
    report: Path
    sample_grid: Path
    summary: dict


def output_paths(params: Params) -> dict[str, Path]:
    out = params.path(params.lesions.out)
    return {"lesions": out / "lesions.parquet", "rejects": out / "rejects.parquet",
            "report": out / "report.json", "sample_grid": out / "sample_grid.png"}


def read_sources(params: Params) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """All sources' records (with `source_rank` = position in params) and rejects, and the rows read."""
    data_root = Path(params.data_root)
    records, rejects, rows_in = [], [], 0
    for rank, source in enumerate(params.lesions.sources):
        duplicates = params.path(source.duplicates) if source.duplicates is not None else None
        result = read_source(source.layout, params.path(source.path), data_root, duplicates=duplicates)
        log.info("%s %s: %d rows, %d records, %d rejects", source.layout, source.path, result.rows_in,
                 len(result.records), len(result.rejects))
        frame = result.records_frame()
        frame["source_rank"] = rank
        records.append(frame)
        rejects.append(result.rejects_frame())
        rows_in += result.rows_in
    table = pd.concat(records, ignore_index=True) if records else pd.DataFrame()
    return table, pd.concat(rejects, ignore_index=True), rows_in


def build_lesions(params: Params) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The lesions and rejects tables and the report dict; writes nothing."""
    data_root = Path(params.data_root)
    records, rejects, rows_in = read_sources(params)
    scans: dict[str, dict] = {}
    corrupt: dict[int, str] = {}  # record index -> decode error
    while True:  # a corrupt kept image rejects its row; the id then falls back to its next-newest row
        merged = merge_records(records.drop(index=list(corrupt)), params.lesions.label_policy)
        if merged.lesions.empty:
            raise NoLesionsError(_nothing_kept(params, rows_in, pd.concat(
                [rejects, merged.rejects, _corrupt_rejects(records, corrupt)], ignore_index=True)))
        todo = [p for p in merged.lesions["image_path"] if p not in scans]
        scans.update(scan_images(todo, data_root, params.lesions.workers, params.lesions.min_skin_pixels))
        errors = {row: scans[path]["error"] for row, path in zip(merged.lesions["kept_row"],
                                                                  merged.lesions["image_path"], strict=True)
                  if scans[path]["error"] is not None}
        if not errors:
            break
        corrupt |= errors
    rejects = pd.concat([rejects, merged.rejects, _corrupt_rejects(records, corrupt)], ignore_index=True)
    lesions = _with_scans(merged.lesions, scans)
    lesions["split"] = assign_splits(
        lesions, val_fraction=params.lesions.split.val_fraction, test_fraction=params.lesions.split.test_fraction,
        seed=params.lesions.split.seed, forced_test=_forced_test(lesions, params)).to_numpy()
    lesions = lesions[list(LESION_COLUMNS)].sort_values("isic_id", ignore_index=True)
    merged_rows = int(merged.status.str.startswith("merged").sum())
    if rows_in != len(lesions) + merged_rows + len(rejects):
        raise AssertionError(f"accounting: {rows_in} rows in != {len(lesions)} kept + {merged_rows} merged + "
                             f"{len(rejects)} rejected")
    rejects = rejects.sort_values(["source_file", "source_row", "reason", "detail"], ignore_index=True,
                                  kind="stable")
    return lesions, rejects, _report(lesions, rejects, rows_in, merged_rows)


def run_lesions(params: Params) -> LesionsOutputs:
    """Build and write the stage's outputs (parquet tables, report, sample grid)."""
    lesions, rejects, report = build_lesions(params)
    paths = output_paths(params)
    write_parquet(lesions, paths["lesions"])
    write_parquet(rejects, paths["rejects"])
    write_json(report, paths["report"])
    sample_grid(lesions, Path(params.data_root), paths["sample_grid"])
    return LesionsOutputs(summary=report, **paths)


def _nothing_kept(params: Params, rows_in: int, rejects: pd.DataFrame, top: int = 3) -> str:
    """The error for a run that rejected every row: which sources, how many rows, the main reasons."""
    sources = ", ".join(f"{s.layout} at {params.path(s.path)}" for s in params.lesions.sources)
    rejects = rejects.sort_values(["source_file", "source_row"], kind="stable")
    reasons = []
    for reason, count in rejects["reason"].value_counts().sort_index().sort_values(ascending=False,
                                                                                    kind="stable").head(top).items():
        example = rejects[rejects["reason"] == reason].iloc[0]
        reasons.append(f"{reason}: {count} (e.g. {example['source_file']} line {example['source_row']}: "
                       f"{example['detail']})")
    files = "; ".join(f"{f}: {n}" for f, n in rejects["source_file"].value_counts().sort_index().items())
    return (f"lesions: every one of the {rows_in} input rows was rejected, no lesion is left. Sources: {sources}. "
            f"Top reasons: {'; '.join(reasons)}. Rejected rows per file: {files}. Check each source's `layout` "
            "and `path` in params.yaml lesions.sources against docs/data.md.")


def _corrupt_rejects(records: pd.DataFrame, corrupt: dict[int, str]) -> pd.DataFrame:
    rows = records.loc[list(corrupt)]
    return pd.DataFrame({
        "source_file": rows["source_file"], "source_row": rows["source_row"].astype(int), "isic_id": rows["isic_id"],
        "reason": CORRUPT_IMAGE, "detail": [f"{p}: {corrupt[i]}" for i, p in zip(rows.index, rows["image_path"],
                                                                                    strict=True)],
    }, columns=list(REJECT_COLUMNS))


def _with_scans(lesions: pd.DataFrame, scans: dict[str, dict]) -> pd.DataFrame:
    lesions = lesions.copy()
    for column in ("sha256", "width", "height", "ita", "chardon", "fst_estimate"):
        lesions[column] = [scans[p][column] for p in lesions["image_path"]]
    known = lesions["fitzpatrick"].map(lambda f: None if pd.isna(f) else "ABC"[(int(f) - 1) // 2])
    lesions["fitzpatrick"] = lesions["fitzpatrick"].astype("Int64")
    lesions["skin_tone_group"] = known.fillna(lesions["fst_estimate"])
    lesions["skin_tone_source"] = "label"
    lesions.loc[known.isna(), "skin_tone_source"] = "ita"
    lesions.loc[known.isna() & (lesions["fst_estimate"] == "unknown"), "skin_tone_source"] = "unknown"
    lesions["age_approx"] = lesions["age_approx"].astype(float)
    return lesions


def _forced_test(lesions: pd.DataFrame, params: Params) -> pd.Series:
    official = set(params.lesions.split.official_test_sources)
    forced = lesions["sources"].map(lambda s: bool(official & set(s.split("|"))))
    mclass = [s for s in params.external_sets.sets if s.name == "mclass_d"]
    if mclass:
        from pipelines.external_sets import mclass_d_isic_ids

        ids = mclass_d_isic_ids(params.path(mclass[0].path))
        forced |= lesions["isic_id"].isin(ids)
    return forced


def _report(lesions: pd.DataFrame, rejects: pd.DataFrame, rows_in: int, merged_rows: int) -> dict:
    tone_table = pd.crosstab(lesions["skin_tone_group"], lesions["label"])
    return {
        "rows_in": rows_in,
        "kept": len(lesions),
        "merged_duplicates": merged_rows,
        "rejected": len(rejects),
        "rejects_by_reason": rejects["reason"].value_counts().sort_index().to_dict(),
        "label_conflicts": rejects.loc[rejects["reason"] == "label_conflict", ["isic_id", "detail"]].to_dict(
            "records"),
        "label_rate": round(float(lesions["label"].mean()), 6) if len(lesions) else 0.0,
        "splits": lesions["split"].value_counts().sort_index().to_dict(),
        # hashed splits are unbiased only in expectation (splits.py): the realised rates, for the nightly diff
        "label_rate_by_split": lesions.groupby("split")["label"].mean().round(6).sort_index().to_dict(),
        "label_by_skin_tone": {str(t): {str(k): int(v) for k, v in row.items()} for t, row in tone_table.iterrows()},
        "skin_tone_source": lesions["skin_tone_source"].value_counts().sort_index().to_dict(),
        "diagnosis": lesions["diagnosis"].value_counts().sort_index().to_dict(),
    }
