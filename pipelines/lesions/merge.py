"""Cross-source de-duplication: many input rows -> one row per image id, nothing lost.

Every input row ends in exactly one state: `kept` (it is the row whose label and image the lesion
uses), `merged` (the same image from another year/split, or an ISIC 2020 duplicate, with a consistent
label — provenance kept in `sources`/`merged_ids`), or `rejected` (in the rejects table with a reason).

Rules (docs/data.md states them for users):
- The newest source wins: its label and diagnosis are kept (later challenges re-reviewed labels, e.g.
  ISIC 2019 calls three 2016 "benign" images MEL, DATA.md §1.1). Order: 2016 < 2017 < 2018/HAM10000
  < 2019 < 2020 < archive export; ties go to the source listed first in params.
- An older row whose binary label differs from the newest is a `label_conflict` reject, unless its
  diagnosis is a coarse code the newer one refines (HAM10000 AKIEC -> 2019 AK/SCC).
- Metadata (sex, age, site, patient, lesion, Fitzpatrick) comes from the newest row that has it.
- ISIC 2020 duplicate pairs: `image_name_1` is merged into `image_name_2` when their labels agree;
  when they disagree both are `label_conflict` rejects (we cannot tell which label is right).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from pipelines.lesions.labels import is_refinement, label_of
from pipelines.lesions.schema import LABEL_CONFLICT, REJECT_COLUMNS

RECENCY = {"isic2016": 0, "isic2017": 1, "isic2018": 2, "ham10000": 2, "isic2019": 3, "isic2020": 4,
           "isic_archive": 5}
FILLED = ("sex", "age_approx", "anatom_site_general", "patient_id", "lesion_id", "fitzpatrick")


@dataclass
class MergeResult:
    lesions: pd.DataFrame  # one row per id; `kept_row` = index of the record it takes label and image from
    rejects: pd.DataFrame
    status: pd.Series  # per input record (index of the records frame): kept / merged / rejected


def merge_records(records: pd.DataFrame, policy: str) -> MergeResult:
    """Merge the readers' records (index = a unique row number, column `source_rank`) by isic_id."""
    records = records.copy()
    records["label"] = [label_of(d, policy) for d in records["diagnosis"]]
    records["recency"] = [RECENCY.get(s.split(":")[0], 0) for s in records["source"]]
    status = pd.Series("pending", index=records.index, dtype=object)
    rejects: list[dict] = []

    _resolve_duplicates(records, status, rejects)
    rows = []
    live = records[status == "pending"].sort_values(["recency", "source_rank"], ascending=[False, True])
    for isic_id, group in live.groupby("isic_id", sort=True):
        rows.append(_merge_group(isic_id, group, records, status, rejects))
    lesions = pd.DataFrame(rows)
    return MergeResult(lesions=lesions, rejects=pd.DataFrame(rejects, columns=list(REJECT_COLUMNS)), status=status)


def _resolve_duplicates(records: pd.DataFrame, status: pd.Series, rejects: list[dict]) -> None:
    dups = records[records["duplicate_of"].notna()]
    for index, row in dups.iterrows():
        target = records[(records["isic_id"] == row["duplicate_of"]) & records["duplicate_of"].isna()]
        if target.empty:
            continue  # the kept image of the pair is missing: this row stands on its own
        if (target["label"] == row["label"]).all():
            status[index] = "merged:" + row["duplicate_of"]
            continue
        detail = f"ISIC 2020 duplicate pair {row['isic_id']} / {row['duplicate_of']} with different labels"
        for i in [index, *target.index]:
            status[i] = "rejected"
            rejects.append(_reject(records.loc[i], LABEL_CONFLICT, detail))


def _merge_group(isic_id: str, group: pd.DataFrame, records: pd.DataFrame, status: pd.Series,
                 rejects: list[dict]) -> dict:
    primary = group.iloc[0]
    consistent = [primary.name]
    for index, row in group.iloc[1:].iterrows():
        if row["label"] == primary["label"] or is_refinement(row["diagnosis"], primary["diagnosis"]):
            consistent.append(index)
            continue
        status[index] = "rejected"
        rejects.append(_reject(row, LABEL_CONFLICT, (
            f"label {row['label']} ({row['diagnosis_raw']}) in {row['source']} conflicts with "
            f"{primary['label']} ({primary['diagnosis_raw']}) in {primary['source']}; the newest source is kept"
        )))
    status[primary.name] = "kept"
    for index in consistent[1:]:
        status[index] = "merged:" + isic_id
    folded = records[status == "merged:" + isic_id]
    kept = group.loc[consistent]
    out = {c: primary[c] for c in ("isic_id", "diagnosis", "diagnosis_raw", "label")}
    for column in FILLED:
        values = kept[column].dropna()
        out[column] = values.iloc[0] if len(values) else None
    out["sources"] = "|".join(sorted(set(kept["source"]) | set(folded["source"])))
    out["merged_ids"] = "|".join(sorted(set(folded["isic_id"]) - {isic_id}))
    out["image_path"] = primary["image_path"]
    out["kept_row"] = primary.name
    return out


def _reject(row: pd.Series, reason: str, detail: str) -> dict:
    return {"source_file": row["source_file"], "source_row": int(row["source_row"]), "isic_id": row["isic_id"],
            "reason": reason, "detail": detail}
