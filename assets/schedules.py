"""The nightly regeneration: re-materialize the whole graph (ingestion and the latent cache are
incremental, so a night with no new images does little), on the cron of params.yaml `schedule`."""

from __future__ import annotations

from dagster import DefaultScheduleStatus, ScheduleDefinition, define_asset_job

from pipelines.config import load_params

WORKSPACE_TAG = {"fairskin/workspace": "dvc"}  # one run at a time per workspace (.dagster/dagster.yaml)

pipeline_job = define_asset_job(
    "pipeline", selection="*", tags=WORKSPACE_TAG,
    description="Every asset, in dependency order (a string selection, so dagster's selection grammar runs).")

ingestion_job = define_asset_job(
    "ingestion", selection="group:ingestion", tags=WORKSPACE_TAG,
    description="Raw sources -> lesions + rejects -> skin tone; external test sets.")


def nightly_schedule(params_file: str = "params.yaml") -> ScheduleDefinition:
    schedule = load_params(params_file).schedule
    return ScheduleDefinition(
        name="nightly", job=pipeline_job, cron_schedule=schedule.cron, execution_timezone=schedule.timezone,
        default_status=DefaultScheduleStatus.RUNNING,
        description="Regenerate the synthetic data and the report from new data and code.")
