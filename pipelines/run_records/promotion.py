"""Which run's model is in force: `promoted.json` names the newest run record whose run succeeded.

A run that fails a blocking check (validation, fairness threshold) never becomes the promoted one; the
previously promoted record, and the md5s of its model outs, stay named here. `restore_run_record` on
that record brings its artifacts back into the workspace.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from pipelines.atomic_files import write_json
from pipelines.run_records.lock import out_hashes

PROMOTED = "promoted.json"


def read_promoted(records: Path) -> dict | None:
    """The content of `records/promoted.json`, or None when nothing was promoted yet."""
    path = records / PROMOTED
    return json.loads(path.read_text()) if path.is_file() else None


def promote(records: Path, record: dict, model_stages: list[str]) -> Path:
    """Name `record` (a record.json dict) in promoted.json with its model outs' md5s from its own dvc.lock."""
    lock = records / record["name"] / "dvc.lock"
    content = {
        "record": record["name"],
        "run_id": record["run_id"],
        "time": record["time"],
        "git_commit": record["git_commit"],
        "models": out_hashes(lock, model_stages),
        "promoted_at": datetime.now(UTC).isoformat(),
    }
    return write_json(content, records / PROMOTED)


def newest_succeeded(records: list[dict]) -> dict | None:
    """The record that should be promoted among `records` (record.json dicts): the newest succeeded one."""
    succeeded = [r for r in records if r["succeeded"]]
    return max(succeeded, key=lambda r: (datetime.fromisoformat(r["time"]), r["name"])) if succeeded else None
