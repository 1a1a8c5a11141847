"""Run records on a throw-away copy of the project: record, compare, promote, restore, push.

One module-scoped project runs the cheap `lesions` stage (and `demo_data`) through `dvc repro` twice, with
a param between: run A succeeds, run B fails its fairness check. The tests then check the records against
DVC itself (`dvc metrics diff`, `dvc status`, the md5s in dvc.lock, the remote's layout). The DVC tests
take ~100 s on 2 shared cores (each `fairskin` stage process spends ~10 s importing), hence `slow`.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from dvc.utils.diff import diff as dvc_diff

from pipelines.file_hashes import file_md5
from pipelines.run_records import (
    RunRecordsParams,
    find_record,
    list_records,
    push_if_remote,
    read_promoted,
    restore_run_record,
    write_run_record,
)
from pipelines.run_records.lock import out_hashes
from pipelines.run_records.metrics_diff import metrics_diff
from tests.e2e_project import BIN, copy_project, run

T0 = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
# The lesions outs stand in for the model outs here: the model stages are too slow for this test.
PARAMS = RunRecordsParams(model_stages=["lesions", "class_n_diff_model"], push=True)
LESIONS_FILES = ["data/lesions/lesions.parquet", "data/lesions/rejects.parquet", "data/lesions/sample_grid.png",
                 "data/lesions/report.json"]


def set_param(root: Path, keys: tuple[str, ...], value) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    node = params
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def dvc(root: Path, *args: str) -> str:
    return run(root, str(BIN / "dvc"), *args).stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> SimpleNamespace:
    # 100 demo images instead of 300: the same code paths, fewer images to scan.
    root = copy_project(tmp_path_factory.mktemp("project"),
                        prepare=lambda r: set_param(r, ("demo_data", "n_images"), 100))
    dvc(root, "repro", "lesions")
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-qm", "run A")  # so `dvc metrics diff` (HEAD vs workspace) can serve as reference
    a = write_run_record(root, "run-a", succeeded=True, params=PARAMS, now=T0)
    promoted_after_a = (root / "data/runs/promoted.json").read_bytes()

    set_param(root, ("lesions", "split", "val_fraction"), 0.3)  # changes the split counts: a metric and an out
    dvc(root, "repro", "lesions")
    b = write_run_record(root, "run-b", succeeded=False, failed_checks=["fairness_within_threshold"],
                         params=PARAMS, now=T0 + timedelta(days=1))
    reference_diff = json.loads(dvc(root, "metrics", "diff", "--json"))
    return SimpleNamespace(root=root, a=a, b=b, promoted_after_a=promoted_after_a, reference_diff=reference_diff,
                           records=root / "data/runs")


def lock_outs(lock_file: Path) -> dict[str, str]:
    return {path: md5 for outs in out_hashes(lock_file).values() for path, md5 in outs.items()}


@pytest.mark.slow
def test_succeeded_run_promotes_itself(project):
    record = json.loads(project.a.record.read_text())
    assert record["succeeded"] and record["promoted"] == project.a.path.name == "20260105T020000Z-run-a"
    assert record["previous"] is None and record["workspace_clean"] and record["pushed"] is False
    assert record["git_commit"] == run(project.root, "git", "rev-parse", "HEAD").stdout.strip()
    promoted = json.loads(project.promoted_after_a)
    a_lesions = out_hashes(project.a.dvc_lock, ["lesions"])["lesions"]
    assert promoted["record"] == project.a.path.name
    assert promoted["models"] == {"lesions": a_lesions, "class_n_diff_model": {}}
    assert record["model_outs"]["lesions"] == a_lesions
    assert set(a_lesions) == set(LESIONS_FILES)
    assert project.a.metrics_diff_md.read_text().endswith("First run record: nothing to compare with.\n")


@pytest.mark.slow
def test_failed_run_keeps_the_promoted_record(project):
    record = json.loads(project.b.record.read_text())
    assert not record["succeeded"] and record["failed_checks"] == ["fairness_within_threshold"]
    assert record["promoted"] == project.a.path.name
    assert record["promotion"] == f"not promoted (failed checks: fairness_within_threshold); kept {project.a.path.name}"
    # promoted.json was not rewritten by the failed run
    assert (project.records / "promoted.json").read_bytes() == project.promoted_after_a
    assert project.b.summary["promoted"] == project.a.path.name
    assert project.b.promoted == project.records / "promoted.json"


@pytest.mark.slow
def test_records_are_found_in_time_order_and_invisible_to_dvc(project):
    names = [r["name"] for r in list_records(project.records)]
    assert names[:2] == [project.a.path.name, project.b.path.name]
    # DVC sees one pipeline, the project's: no stage or metric of a record folder
    stages = set(yaml.safe_load((project.root / "dvc.yaml").read_text())["stages"])
    assert set(json.loads(dvc(project.root, "status", "--json"))) <= stages
    record = json.loads(project.b.record.read_text())
    assert not [path for path in record["metric_errors"] if path.startswith("data/runs")]
    assert (project.b.path / "pipeline.dvc-yaml").read_bytes() == (project.root / "dvc.yaml").read_bytes()
    assert find_record(project.records, "run-b") == project.b.path
    assert find_record(project.records, "promoted") == project.a.path
    with pytest.raises(FileNotFoundError, match="run-z"):
        find_record(project.records, "run-z")


@pytest.mark.slow
def test_metrics_diff_is_dvcs(project):
    diff = json.loads(project.b.metrics_diff.read_text())
    assert diff == project.reference_diff  # `dvc metrics diff --json` between commit A and the workspace (B)
    a_metrics, b_metrics = (json.loads(r.metrics.read_text()) for r in (project.a, project.b))
    val = diff["data/lesions/report.json"]["splits.val"]
    assert val["old"] == a_metrics["data/lesions/report.json"]["splits"]["val"]
    assert val["new"] == b_metrics["data/lesions/report.json"]["splits"]["val"]
    assert val["diff"] == val["new"] - val["old"] and val["new"] > val["old"]
    record = json.loads(project.b.record.read_text())
    assert record["previous"] == project.a.path.name
    assert record["changed_metrics"] == sum(len(c) for c in diff.values()) >= 1
    assert f"| data/lesions/report.json | splits.val | {val['old']} | {val['new']} | {val['diff']} |" in \
        project.b.metrics_diff_md.read_text()


def test_metrics_diff_agrees_with_dvc_on_nested_values():
    old = {"m.json": {"auc": 0.5, "n": 3, "name": "x", "flag": True, "per": {"A": {"auc": 0.4}, "B": 1}},
           "gone.json": {"k": 1}}
    new = {"m.json": {"auc": 0.75, "n": 3, "name": "y", "flag": False, "per": {"A": {"auc": 0.4, "n": 2}}},
           "new.json": {"k": 2.5}}

    def as_dvc(metrics: dict) -> dict:
        return {path: {"data": values} for path, values in metrics.items()}

    for with_unchanged in (False, True):
        assert metrics_diff(old, new, with_unchanged=with_unchanged) == \
            dvc_diff(as_dvc(old), as_dvc(new), with_unchanged=with_unchanged)
    assert metrics_diff(old, new)["m.json"]["per.B"] == {"old": 1, "new": None}


@pytest.mark.slow
def test_restore_brings_back_exactly_a_runs_artifacts(project):
    root = project.root
    a_outs, b_outs = lock_outs(project.a.dvc_lock), lock_outs(project.b.dvc_lock)
    assert a_outs["data/lesions/lesions.parquet"] != b_outs["data/lesions/lesions.parquet"]
    assert a_outs["data/lesions/report.json"] != b_outs["data/lesions/report.json"]  # an uncached out (a metric)
    for record, outs in ((project.a, a_outs), (project.b, b_outs)):  # A, then back to B
        restored = restore_run_record(root, record.path)
        assert restored.stages == ["demo_data", "lesions"] and restored.status == {} and not restored.fetched
        assert lock_outs(root / "dvc.lock") == outs
        assert (root / "params.yaml").read_bytes() == record.params.read_bytes()
        for path in LESIONS_FILES:
            assert file_md5(root / path) == outs[path], path
        assert json.loads(dvc(root, "status", "--json", "lesions")) == {}


@pytest.mark.slow
def test_push_to_a_local_remote_and_fetch_back(project, tmp_path):
    root = project.root
    restore_run_record(root, project.b.path)  # the workspace holds run B, whatever ran before
    assert push_if_remote(root) is False  # no remote configured
    remote = tmp_path / "remote"
    dvc(root, "remote", "add", "-d", "local", str(remote))
    c = write_run_record(root, "run-c", succeeded=True, params=PARAMS, now=T0 + timedelta(days=2))
    record = json.loads(c.record.read_text())
    assert record["pushed"] and record["remote"] == "local" and record["push_error"] is None
    assert read_promoted(project.records)["record"] == c.path.name  # a succeeded run after a failed one
    md5 = lock_outs(root / "dvc.lock")["data/lesions/lesions.parquet"]
    pushed = remote / "files/md5" / md5[:2] / md5[2:]  # DVC 3's remote layout
    assert pushed.read_bytes() == (root / "data/lesions/lesions.parquet").read_bytes()
    assert push_if_remote(root) is True

    # A machine without the local cache: restore fetches the record's artifacts from the remote.
    cache = root / ".dvc/cache"
    shutil.move(cache, tmp_path / "cache")
    try:
        (root / "data/lesions/lesions.parquet").unlink()
        restored = restore_run_record(root, c.path)
        assert restored.fetched and restored.status == {}
        assert file_md5(root / "data/lesions/lesions.parquet") == md5
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        shutil.move(tmp_path / "cache", cache)


@pytest.mark.slow
def test_a_crash_leaves_no_half_record(project, monkeypatch):
    import pipelines.run_records.record as record_module

    def crash(*args, **kwargs):
        raise OSError("disk full")

    before = sorted(p.name for p in project.records.iterdir())
    promoted = (project.records / "promoted.json").read_bytes()
    monkeypatch.setattr(record_module, "diff_markdown", crash)
    with pytest.raises(OSError, match="disk full"):
        write_run_record(project.root, "run-crash", succeeded=True, params=PARAMS.model_copy(update={"push": False}),
                         now=T0 + timedelta(days=3))
    assert sorted(p.name for p in project.records.iterdir()) == before
    assert (project.records / "promoted.json").read_bytes() == promoted
    with pytest.raises(ValueError, match="succeeded=True but failed checks"):
        write_run_record(project.root, "run-x", succeeded=True, failed_checks=["validation"])


@pytest.mark.slow
def test_the_dagster_failure_sensor_records_a_failed_run_and_keeps_the_promotion(project, monkeypatch):
    """The real sensor (assets/run_records.py) on a `pipeline` run whose blocking fairness check failed."""
    from dagster import DagsterEventType, build_run_status_sensor_context

    from assets.pipeline_resource import PipelineResource
    from assets.run_records import run_record_of_failed_run
    from tests.test_run_record_sensor import run_job

    instance, run_id, success = run_job(["fairness_report", "run_record"])
    assert not success
    dagster_run = instance.get_run_by_id(run_id)
    (failure,) = instance.get_records_for_run(run_id, of_type=DagsterEventType.RUN_FAILURE).records
    promoted = (project.records / "promoted.json").read_bytes()
    monkeypatch.chdir(project.root)
    context = build_run_status_sensor_context(
        sensor_name="run_record_of_failed_run", dagster_instance=instance, dagster_run=dagster_run,
        dagster_event=failure.event_log_entry.dagster_event).for_run_failure()
    run_record_of_failed_run(context, pipeline=PipelineResource())
    (record,) = [r for r in list_records(project.records) if r["run_id"] == run_id]
    assert not record["succeeded"] and record["failed_checks"] == ["fairness_within_threshold"]
    assert (project.records / "promoted.json").read_bytes() == promoted
    assert record["promoted"] == read_promoted(project.records)["record"] != record["name"]
