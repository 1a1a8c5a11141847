"""A run record: `data/runs/<UTC date>-<run id>/`, what one pipeline run produced and how it compares.

Each record holds the run's `dvc.lock` (the md5 of every artifact: `restore_run_record` checks them out
again), `params.yaml`, the pipeline definition (`pipeline.dvc-yaml`: a file named dvc.yaml would make
DVC load the record as a second pipeline), every DVC metric (`metrics.json`), the metric files DVC does not cache
(`uncached/`), the fairness summary, the metric changes since the previous record (`metrics_diff.json`
in `dvc metrics diff --json`'s shape, and `metrics_diff.md`), and `record.json` (who, when, passed or
not, which record is promoted, pushed or not). The folder is written under a temporary name and
renamed, so a crash never leaves a half record.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipelines import dvc_cli
from pipelines.atomic_files import write_json
from pipelines.file_hashes import file_md5
from pipelines.run_records.lock import out_hashes, read_lock, uncached_outs
from pipelines.run_records.metrics_diff import diff_markdown, metrics_diff
from pipelines.run_records.params import RunRecordsParams
from pipelines.run_records.promotion import newest_succeeded, promote, read_promoted

log = logging.getLogger(__name__)

RECORD = "record.json"
PIPELINE = "pipeline.dvc-yaml"  # the run's dvc.yaml, under a name DVC does not collect
STAMP = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class RunRecord:
    path: Path  # the record folder
    record: Path  # record.json
    metrics: Path
    metrics_diff: Path
    metrics_diff_md: Path
    dvc_lock: Path
    params: Path
    fairness_summary: Path | None
    promoted: Path | None  # records/promoted.json (None while no run ever succeeded)
    summary: dict  # JSON-able, for Dagster metadata


def list_records(records: Path) -> list[dict]:
    """record.json of every finished record under `records`, oldest first (temporary folders are skipped)."""
    if not records.is_dir():
        return []
    found = []
    for folder in records.iterdir():
        if folder.is_dir() and not folder.name.startswith(".") and (folder / RECORD).is_file():
            found.append(json.loads((folder / RECORD).read_text()))
    return sorted(found, key=lambda r: (datetime.fromisoformat(r["time"]), r["name"]))


def find_record(records: Path, name: str) -> Path:
    """A record folder by its name, its run id, "latest" or "promoted"; errors list what exists."""
    existing = list_records(records)
    if name == "promoted":
        promoted = read_promoted(records)
        if promoted is None:
            raise FileNotFoundError(f"{records / 'promoted.json'}: no run has been promoted yet")
        name = promoted["record"]
    elif name == "latest" and existing:
        name = existing[-1]["name"]
    matches = [r["name"] for r in existing if name in (r["name"], r["run_id"])]
    if len(matches) != 1:
        raise FileNotFoundError(f"{records}: expected one run record named {name!r}, found {matches or 'none'} "
                                f"among {[r['name'] for r in existing]}")
    return records / matches[0]


def record_name(run_id: str, now: datetime) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", run_id).strip("-.")
    if not safe:
        raise ValueError(f"run id {run_id!r}: expected letters, digits, '.', '_' or '-'")
    return f"{now.astimezone(UTC).strftime(STAMP)}-{safe}"


def _promotion_note(succeeded: bool, failed_checks: Sequence[str], promoted: dict | None, name: str) -> str:
    if promoted is not None and promoted["name"] == name:
        return "promoted: this run succeeded"
    why = f"failed checks: {', '.join(failed_checks)}" if failed_checks else "the run failed"
    if not succeeded:
        kept = f"kept {promoted['name']}" if promoted else "nothing promoted yet"
        return f"not promoted ({why}); {kept}"
    return f"not promoted: {promoted['name']} is newer"


def _push(root: Path, params: RunRecordsParams) -> tuple[bool, str | None, str | None]:
    """(pushed, remote, error): `dvc push` when enabled and a remote is configured."""
    remote = dvc_cli.remote_name(root) if params.push else None
    if remote is None:
        return False, None, None
    try:
        dvc_cli.push(root, remote)
        return True, remote, None
    except RuntimeError as error:  # the record still tells what happened; the artifacts stay in the local cache
        log.warning("dvc push to %s failed: %s", remote, error)
        return False, remote, str(error)[-2000:]


def write_run_record(root: Path, run_id: str, *, succeeded: bool, failed_checks: Sequence[str] = (),
                     records: Path | str = "data/runs",
                     fairness_summary: Path | str | None = "data/fairness_report/report.md",
                     params: RunRecordsParams | None = None, now: datetime | None = None) -> RunRecord:
    """Record the workspace's current run (dvc.lock, params, metrics) under `records`, promote it if it
    succeeded, `dvc push` when a remote is configured. Relative paths are relative to `root`."""
    params = params or RunRecordsParams()
    if succeeded and failed_checks:
        raise ValueError(f"run {run_id}: succeeded=True but failed checks {list(failed_checks)}")
    root = Path(root).resolve()
    records = root / records
    fairness = root / fairness_summary if fairness_summary is not None else None
    now = (now or datetime.now(UTC)).astimezone(UTC)
    name = record_name(run_id, now)
    final = records / name
    if final.exists():
        raise FileExistsError(f"{final}: a run record of this name exists already")
    stages = list(read_lock(root / "dvc.lock"))  # also fails early, naming the file, when there is no dvc.lock

    existing = list_records(records)
    previous = existing[-1] if existing else None
    metrics, metric_errors = dvc_cli.metrics_show(root)
    status = dvc_cli.status(root, stages)
    pushed, remote, push_error = _push(root, params)
    old_metrics = json.loads((records / previous["name"] / "metrics.json").read_text()) if previous else {}
    diff = metrics_diff(old_metrics, metrics)
    uncached = [p for p in uncached_outs(root / "dvc.yaml") if (root / p).is_file()]

    record = {
        "name": name, "run_id": run_id, "time": now.isoformat(), "git_commit": dvc_cli.git_commit(root),
        "succeeded": succeeded, "failed_checks": list(failed_checks),
        "previous": previous["name"] if previous else None,
        "changed_metrics": sum(len(changes) for changes in diff.values()),
        "metric_errors": metric_errors, "workspace_clean": status == {}, "dvc_status": status,
        "model_outs": out_hashes(root / "dvc.lock", params.model_stages),
        "uncached_outs": {p: file_md5(root / p) for p in uncached},
        "pushed": pushed, "remote": remote, "push_error": push_error,
    }
    promoted = newest_succeeded([*existing, record])
    record["promoted"] = promoted["name"] if promoted else None
    record["promotion"] = _promotion_note(succeeded, failed_checks, promoted, name)
    if not record["workspace_clean"]:
        log.warning("run record %s: the workspace differs from dvc.lock (%s)", name, sorted(status))

    records.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=records))
    try:
        for source, target in (("dvc.lock", "dvc.lock"), ("params.yaml", "params.yaml"), ("dvc.yaml", PIPELINE)):
            shutil.copy2(root / source, temp / target)
        for path in uncached:
            (temp / "uncached" / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / path, temp / "uncached" / path)
        if fairness is not None and fairness.is_file():
            shutil.copy2(fairness, temp / "fairness_report.md")
        write_json(metrics, temp / "metrics.json")
        write_json(diff, temp / "metrics_diff.json")
        (temp / "metrics_diff.md").write_text(diff_markdown(diff, record["previous"], name))
        write_json(record, temp / RECORD)
        temp.chmod(0o755)  # mkdtemp makes it private; a record is as readable as the rest of data/
        temp.rename(final)
    finally:
        if temp.exists():
            shutil.rmtree(temp)

    current = read_promoted(records)
    if promoted is not None and (current is None or current["record"] != promoted["name"]):
        promote(records, promoted, params.model_stages)
    log.info("run record %s: %s; %d metrics changed since %s; pushed=%s", name, record["promotion"],
             record["changed_metrics"], record["previous"], pushed)
    summary = {key: record[key] for key in ("name", "run_id", "time", "succeeded", "failed_checks", "previous",
                                            "promoted", "promotion", "changed_metrics", "workspace_clean", "pushed")}
    return RunRecord(path=final, record=final / RECORD, metrics=final / "metrics.json",
                     metrics_diff=final / "metrics_diff.json", metrics_diff_md=final / "metrics_diff.md",
                     dvc_lock=final / "dvc.lock", params=final / "params.yaml",
                     fairness_summary=final / "fairness_report.md" if (final / "fairness_report.md").exists() else None,
                     promoted=records / "promoted.json" if promoted is not None else None, summary=summary)
