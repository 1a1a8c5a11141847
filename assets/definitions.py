"""The Dagster code location: `dagster dev` from the repo root finds it through pyproject [tool.dagster]."""

from __future__ import annotations

from dagster import Definitions, in_process_executor

from assets.ingestion import (
    demo_data,
    external_sets,
    external_sets_valid,
    lesions_and_rejects,
    lesions_valid,
    skin_tone,
)
from assets.models import ASSETS, CHECKS
from assets.pipeline_resource import PipelineResource
from assets.run_records import run_record, run_record_of_failed_run
from assets.schedules import ingestion_job, nightly_schedule, pipeline_job

defs = Definitions(
    assets=[demo_data, lesions_and_rejects, skin_tone, external_sets, *ASSETS, run_record],
    asset_checks=[lesions_valid, external_sets_valid, *CHECKS],
    jobs=[pipeline_job, ingestion_job],
    schedules=[nightly_schedule()],
    sensors=[run_record_of_failed_run],
    resources={"pipeline": PipelineResource()},
    # One process: stages share one DVC workspace, whose lock forbids parallel `dvc commit`s (STACK.md).
    executor=in_process_executor,
)
