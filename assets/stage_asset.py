"""One Dagster asset per pipeline stage: run the stage, `dvc commit` it, show its summary.

The stage function, its DVC stage and its asset share one name (STYLE.md). The data version is the DVC
hash of the stage's first output; the code version hashes the source files the stage runs (its code deps
in dvc.yaml, derived from its imports by pipelines/stage_code.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetsDefinition,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from assets.code_versions import stage_code_version
from assets.pipeline_resource import PipelineResource
from pipelines.stages import STAGES
from pipelines.validation.report import ValidationReport

POOL = "dvc_workspace"  # one stage at a time in the DVC workspace (.dagster/dagster.yaml)


def image_markdown(path: Path) -> str:
    """Inline a PNG in the UI's markdown metadata."""
    import base64

    return f"![{path.name}](data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()})"


def summary_metadata(summary: dict, images: Sequence[Path] = ()) -> dict[str, Any]:
    """Scalars as metadata entries, nested values as JSON, figures inline."""
    metadata: dict[str, Any] = {}
    for key, value in summary.items():
        if isinstance(value, bool | int | float | str) and not (isinstance(value, str) and len(value) > 200):
            metadata[key] = value
        elif isinstance(value, str) and "|" in value and "\n" in value:
            metadata[key] = MetadataValue.md(value)  # a markdown table
        else:
            metadata[key] = MetadataValue.json(json.loads(json.dumps(value, default=str)))
    for image in images:
        if image is not None and Path(image).is_file():
            metadata[Path(image).stem] = MetadataValue.md(image_markdown(Path(image)))
    return metadata


def data_version(hashes: dict[str, str]) -> DataVersion | None:
    return DataVersion(next(iter(hashes.values()))) if hashes else None


def stage_asset(name: str, *, group: str, deps: Sequence[str], description: str,
                figures: Callable[[Any], Sequence[Path]] = lambda outputs: (), pool: str = POOL) -> AssetsDefinition:
    """The asset `name` over `pipelines.stages.STAGES[name]`."""

    @asset(name=name, group_name=group, deps=list(deps), description=description, pool=pool,
           code_version=stage_code_version(name))
    def _asset(pipeline: PipelineResource) -> MaterializeResult:
        outputs = STAGES[name].run(pipeline.params())
        hashes = pipeline.commit(name)
        summary = getattr(outputs, "summary", None) or {}
        return MaterializeResult(data_version=data_version(hashes),
                                 metadata=summary_metadata(summary, figures(outputs)))

    return _asset


def check_result(report: ValidationReport) -> AssetCheckResult:
    return AssetCheckResult(
        passed=report.success, severity=AssetCheckSeverity.ERROR,
        metadata={"summary": MetadataValue.md("```\n" + report.summary() + "\n```"),
                  "failed_expectations": MetadataValue.json([o.describe() for o in report.failures]),
                  "expectations": len(report.outcomes)})


def stage_check(name: str, asset_name: str, description: str):
    """A blocking check running the stage's own validation (pipelines.stages.STAGES[...].check)."""

    @asset_check(asset=asset_name, name=name, blocking=True, description=description)
    def _check(pipeline: PipelineResource) -> AssetCheckResult:
        return check_result(STAGES[asset_name].check(pipeline.params()))

    return _check
