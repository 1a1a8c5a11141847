"""Bring an old run back: its dvc.lock and params.yaml into the workspace, then `dvc checkout` its artifacts.

DVC restores every cached out from its cache (fetching from the remote when the local cache lacks them);
the outs DVC does not cache (metrics) come from the record's `uncached/` copies. After a restore,
`dvc status` is clean for the record's stages when the code (the stages' source deps) is the same as then.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipelines import dvc_cli
from pipelines.atomic_files import atomic_path
from pipelines.run_records.lock import read_lock
from pipelines.run_records.record import PIPELINE, RECORD

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestoredRecord:
    record: Path
    stages: list[str]  # the stages checked out (those in the record's dvc.lock)
    fetched: bool  # whether DVC had to fetch missing cache entries from the remote
    status: dict  # `dvc status --json` of those stages afterwards ({} = exactly the record's artifacts)
    summary: dict


def _copy_atomic(source: Path, target: Path) -> None:
    with atomic_path(target) as temp:
        shutil.copy2(source, temp)


def restore_run_record(root: Path, record_dir: Path, *, fetch_missing: bool = True) -> RestoredRecord:
    """Make the workspace under `root` hold exactly the artifacts of the run recorded in `record_dir`."""
    root, record_dir = Path(root).resolve(), Path(record_dir).resolve()
    for name in (RECORD, "dvc.lock", "params.yaml"):
        if not (record_dir / name).is_file():
            raise FileNotFoundError(f"{record_dir / name}: not a run record (expected {name} in it)")
    stages = list(read_lock(record_dir / "dvc.lock"))
    current = (yaml.safe_load((root / "dvc.yaml").read_text()) or {}).get("stages", {})
    if missing := sorted(set(current) - set(stages)):
        log.warning("%s has no lock entry for %s: their outputs in the workspace are left as they are",
                    record_dir.name, missing)
    pipeline = record_dir / PIPELINE
    if pipeline.is_file() and pipeline.read_text() != (root / "dvc.yaml").read_text():
        log.warning("dvc.yaml changed since %s: stages whose definition changed will not be clean", record_dir.name)

    _copy_atomic(record_dir / "dvc.lock", root / "dvc.lock")
    _copy_atomic(record_dir / "params.yaml", root / "params.yaml")
    fetched = False
    done = dvc_cli.dvc(root, "checkout", "--force", *stages, check=False)
    if done.returncode != 0 and fetch_missing and dvc_cli.remote_name(root) is not None:
        log.info("local DVC cache lacks some of %s's artifacts: fetching them from the remote", record_dir.name)
        dvc_cli.dvc(root, "fetch", *stages)
        fetched = True
        done = dvc_cli.dvc(root, "checkout", "--force", *stages, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"`dvc checkout` of {record_dir.name} failed (dvc.lock and params.yaml are already "
                           f"the record's; fetch the missing cache and run `dvc checkout` again):\n"
                           f"{done.stdout[-4000:]}{done.stderr[-4000:]}")
    uncached = record_dir / "uncached"
    for source in sorted(p for p in uncached.rglob("*") if p.is_file()) if uncached.is_dir() else []:
        _copy_atomic(source, root / source.relative_to(uncached))
    status = dvc_cli.status(root, stages)
    if status:
        log.warning("after restoring %s, dvc status is not clean: %s", record_dir.name, status)
    summary = {"record": record_dir.name, "stages": stages, "fetched": fetched, "clean": status == {}}
    log.info("restored %s: %d stages checked out%s", record_dir.name, len(stages), " (fetched)" if fetched else "")
    return RestoredRecord(record=record_dir, stages=stages, fetched=fetched, status=status, summary=summary)
