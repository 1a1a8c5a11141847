"""Dagster assets of the data layer: demo data -> lesions + rejects -> skin tone; external test sets.

Thin: each asset calls its stage in pipelines/stages.py, commits the outputs to DVC, and shows the
stage's summary as metadata. Validation runs as blocking asset checks (a failure stops downstream).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetSpec,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
    multi_asset,
)

from assets.code_versions import stage_code_version
from assets.pipeline_resource import PipelineResource
from assets.stage_asset import POOL, check_result, image_markdown
from pipelines.stages import STAGES

GROUP = "ingestion"


def _version(hashes: dict[str, str], path: Path) -> DataVersion | None:
    md5 = hashes.get(path.as_posix())
    return DataVersion(md5) if md5 else None


def _table(frame: pd.DataFrame, rows: int = 10) -> MetadataValue:
    return MetadataValue.md(frame.head(rows).to_markdown(index=False) if len(frame) else "(empty)")


@asset(group_name=GROUP, pool=POOL, code_version=stage_code_version("demo_data"),
       description="The embedded demo dataset: synthetic dermoscopy images in the real ISIC 2016-2020, "
                   "isic-cli export and DDI on-disk layouts, with planted quirks (pipelines/demo_data).")
def demo_data(pipeline: PipelineResource) -> MaterializeResult:
    params = pipeline.params()
    summary = STAGES["demo_data"].run(params)
    out = params.path(params.demo_data_out)
    hashes = pipeline.commit("demo_data")
    return MaterializeResult(
        data_version=_version(hashes, out),
        metadata={"path": MetadataValue.path(str(out)), "image_files": summary.n_image_files,
                  "unique_images": summary.n_unique_images,
                  "files": MetadataValue.json(summary.files),
                  "quirks": MetadataValue.json([q.kind + ": " + ", ".join(q.ids) for q in summary.quirks])},
    )


@multi_asset(
    pool=POOL,
    specs=[
        AssetSpec("lesions", group_name=GROUP, deps=[demo_data], code_version=stage_code_version("lesions"),
            description="One row per ISIC image across 2016-2020 and archive exports: normalised diagnosis, "
                        "binary label, demographics, sha256, skin tone (ITA + group), patient-grouped split."),
        AssetSpec("rejects", group_name=GROUP, deps=[demo_data], code_version=stage_code_version("lesions"),
                  description="Every input row that is not in `lesions` (nor a merged duplicate), with the file, "
                              "row and reason."),
    ],
)
def lesions_and_rejects(pipeline: PipelineResource):
    from pipelines.lesions.stage import output_paths

    params = pipeline.params()
    outputs = STAGES["lesions"].run(params)
    hashes = pipeline.commit("lesions")
    paths = output_paths(params)
    report = outputs.summary
    table = pd.read_parquet(paths["lesions"])
    yield MaterializeResult(
        asset_key="lesions",
        data_version=_version(hashes, paths["lesions"]),
        metadata={
            "path": MetadataValue.path(str(paths["lesions"])),
            "dagster/row_count": report["kept"],
            "rows_in": report["rows_in"], "merged_duplicates": report["merged_duplicates"],
            "label_rate": report["label_rate"],
            "splits": MetadataValue.json(report["splits"]),
            "label_by_skin_tone": MetadataValue.md(pd.crosstab(
                table["skin_tone_group"], table["label"].map({0: "benign", 1: "malignant"})).to_markdown()),
            "label_conflicts": MetadataValue.json(report["label_conflicts"]),
            "sample_grid": MetadataValue.md(image_markdown(paths["sample_grid"])),
            "preview": _table(table[["isic_id", "sources", "diagnosis", "label", "skin_tone_group", "split"]]),
        },
    )
    rejects = pd.read_parquet(paths["rejects"])
    yield MaterializeResult(
        asset_key="rejects",
        data_version=_version(hashes, paths["rejects"]),
        metadata={"path": MetadataValue.path(str(paths["rejects"])), "dagster/row_count": len(rejects),
                  "by_reason": MetadataValue.json(report["rejects_by_reason"]), "preview": _table(rejects, 20)},
    )


@asset(group_name=GROUP, pool=POOL, deps=["lesions"], code_version=stage_code_version("skin_tone"),
       description="How far the ITA skin-tone estimate agrees with known Fitzpatrick types; ITA distributions.")
def skin_tone(pipeline: PipelineResource) -> MaterializeResult:
    params = pipeline.params()
    outputs = STAGES["skin_tone"].run(params)
    hashes = pipeline.commit("skin_tone")
    truth = outputs.summary["estimate_vs_truth"]
    return MaterializeResult(
        data_version=_version(hashes, outputs.confusion_plot),
        metadata={"agreement": truth["agreement"], "n_with_known_type": truth["n"],
                  "confusion (true x estimated)": MetadataValue.md(
                      pd.DataFrame(truth["confusion"]).T.to_markdown() if truth["confusion"] else "(none)"),
                  "ita_by_group": MetadataValue.md(image_markdown(outputs.confusion_plot))},
    )


@asset(group_name=GROUP, pool=POOL, deps=[demo_data], code_version=stage_code_version("external_sets"),
       description="External test sets (DDI, Fitzpatrick17k, Derm7pt, MClass, ASAN) as configured, in one table.")
def external_sets(pipeline: PipelineResource) -> MaterializeResult:
    params = pipeline.params()
    outputs = STAGES["external_sets"].run(params)
    hashes = pipeline.commit("external_sets")
    return MaterializeResult(
        data_version=_version(hashes, outputs.table),
        metadata={"path": MetadataValue.path(str(outputs.table)), "images": MetadataValue.json(
            outputs.summary["images"]), "by_skin_tone": MetadataValue.json(outputs.summary["by_skin_tone"]),
            "rejects_by_reason": MetadataValue.json(outputs.summary["rejects_by_reason"])},
    )


@asset_check(asset="lesions", blocking=True, name="lesions_valid",
             description="Great Expectations suite on the lesions table (ids, values, label rate, files, splits).")
def lesions_valid(pipeline: PipelineResource) -> AssetCheckResult:
    return check_result(STAGES["lesions"].check(pipeline.params()))


@asset_check(asset=external_sets, blocking=True, name="external_sets_valid",
             description="Great Expectations suite on the external test-set table.")
def external_sets_valid(pipeline: PipelineResource) -> AssetCheckResult:
    return check_result(STAGES["external_sets"].check(pipeline.params()))
