"""The failed-run record names the blocking check that failed (the run-failure sensor's input)."""

from __future__ import annotations

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    DagsterInstance,
    Definitions,
    asset,
    asset_check,
    define_asset_job,
)

from assets.run_records import failed_checks_of


@asset
def fairness_report() -> int:
    return 1


@asset(deps=[fairness_report])
def run_record() -> int:
    return 2


@asset_check(asset=fairness_report, blocking=True)
def fairness_within_threshold() -> AssetCheckResult:
    return AssetCheckResult(passed=False, severity=AssetCheckSeverity.ERROR)


@asset
def broken_stage() -> int:
    raise ValueError("a stage that fails outright")


def run_job(selection: list[str]) -> tuple[DagsterInstance, str, bool]:
    defs = Definitions(assets=[fairness_report, run_record, broken_stage], asset_checks=[fairness_within_threshold],
                       jobs=[define_asset_job("pipeline", selection=selection)])
    instance = DagsterInstance.ephemeral()
    result = defs.resolve_job_def("pipeline").execute_in_process(instance=instance, raise_on_error=False)
    return instance, result.run_id, result.success


def test_a_failed_blocking_check_fails_the_run_skips_downstream_and_is_named():
    instance, run_id, success = run_job(["fairness_report", "run_record"])
    assert not success  # so the run-failure sensor fires and the run_record asset never ran
    assert instance.get_latest_materialization_event(run_record.key) is None
    assert failed_checks_of(instance, run_id) == ["fairness_within_threshold"]


def test_a_failed_stage_is_named_by_its_step():
    instance, run_id, success = run_job(["broken_stage"])
    assert not success
    assert failed_checks_of(instance, run_id) == ["step:broken_stage"]
