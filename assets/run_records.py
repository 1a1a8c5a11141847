"""Every run of the `pipeline` job leaves a run record (pipelines/run_records): the last asset writes it for a
run that got there, a run-failure sensor for one that did not (a failed blocking check or a failed stage).

A succeeded run promotes itself; a failed one leaves `data/runs/promoted.json` naming the last good run and
its record says why (`fairskin restore promoted` brings that run's artifacts back into the workspace).
"""

from __future__ import annotations

from pathlib import Path

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DefaultSensorStatus,
    MaterializeResult,
    MetadataValue,
    RunFailureSensorContext,
    asset,
    run_failure_sensor,
)

from assets.code_versions import module_code_version
from assets.pipeline_resource import PipelineResource
from assets.schedules import pipeline_job
from assets.stage_asset import POOL, summary_metadata

# The graph's sinks: the record waits for all of them, so it is the last asset of a `pipeline` run.
SINKS = ["fairness_report", "generation_report", "dit_baseline", "skin_tone", "rejects"]


def _write(pipeline: PipelineResource, run_id: str, failed_checks: list[str] | None):
    from pipelines.run_records import write_run_record

    params = pipeline.params()
    return write_run_record(Path.cwd(), run_id, succeeded=failed_checks is None, failed_checks=failed_checks or [],
                            records=params.path(params.run_records.out),
                            fairness_summary=params.path(params.run_records.fairness_summary),
                            params=params.run_records)


@asset(group_name="operations", deps=SINKS, pool=POOL, code_version=module_code_version("pipelines.run_records"),
       description="This run's record under data/runs/: dvc.lock, params, metrics, fairness summary, the metrics "
                   "diff against the previous run; promotes the run, `dvc push` when a remote is set.")
def run_record(context, pipeline: PipelineResource) -> MaterializeResult:  # noqa: ANN001
    record = _write(pipeline, context.run_id, None)
    context.log.info("run record %s: %s", record.path, record.summary["promotion"])
    return MaterializeResult(metadata={**summary_metadata(record.summary),
                                       "metrics_diff": MetadataValue.md(record.metrics_diff_md.read_text())})


def failed_checks_of(instance: DagsterInstance, run_id: str) -> list[str]:
    """Names of the checks that failed in the run, then `step:<key>` for steps that failed for another reason."""
    checks = []
    for record in instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if not evaluation.passed:
            checks.append(evaluation.check_name)
    failed_steps = instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_FAILURE).records
    # a failed blocking check also fails its own step (`<asset>_<check>`): name it once, as the check
    steps = [r.event_log_entry.dagster_event.step_key for r in failed_steps]
    return sorted(set(checks)) + [f"step:{s}" for s in steps if not any(s.endswith(f"_{c}") for c in checks)]


@run_failure_sensor(name="run_record_of_failed_run", monitored_jobs=[pipeline_job],
                    default_status=DefaultSensorStatus.RUNNING,
                    description="A failed `pipeline` run gets a run record too; the promoted run stays promoted.")
def run_record_of_failed_run(context: RunFailureSensorContext, pipeline: PipelineResource) -> None:
    failed = failed_checks_of(context.instance, context.dagster_run.run_id) or ["run failed"]
    record = _write(pipeline, context.dagster_run.run_id, failed)
    context.log.info("run record %s: %s", record.path, record.summary["promotion"])
