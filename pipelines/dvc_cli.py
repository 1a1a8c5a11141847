"""DVC as a command: the `dvc` binary next to the running Python, in the project root, no analytics.

Used by the assets' `dvc commit` (assets/pipeline_resource.py) and the run records; a command keeps DVC's
own process state (repo lock, caches) out of the Dagster process.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def dvc_binary() -> str:
    dvc = Path(sys.executable).with_name("dvc")
    return str(dvc) if dvc.exists() else "dvc"


def dvc(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run `dvc <args>` in `root`; with `check`, a non-zero exit raises with DVC's own message."""
    command = [dvc_binary(), *args]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True,
                          env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    if check and done.returncode != 0:
        raise RuntimeError(f"`dvc {' '.join(args)}` in {root} exited {done.returncode}:\n"
                           f"{done.stdout[-4000:]}{done.stderr[-4000:]}")
    return done


def remote_name(root: Path) -> str | None:
    """The remote `dvc push` would use: the default one, else the only/first configured one, else None."""
    default = dvc(root, "remote", "default", check=False)
    if default.returncode == 0 and default.stdout.strip():
        return default.stdout.strip()
    names = [line.split()[0] for line in dvc(root, "remote", "list").stdout.splitlines() if line.strip()]
    return names[0] if names else None


def push_if_remote(root: Path) -> bool:
    """`dvc push` every cached out of dvc.lock when a remote is configured; returns whether it pushed.

    A push that fails raises: the caller decides whether that fails the run (run records note it)."""
    remote = remote_name(root)
    if remote is None:
        log.info("no DVC remote configured in %s: nothing pushed", root)
        return False
    push(root, remote)
    return True


def push(root: Path, remote: str) -> None:
    done = dvc(root, "push", "--remote", remote)
    log.info("dvc push to %s: %s", remote, " ".join(done.stdout.strip().splitlines()[-1:]) or "done")


def metrics_show(root: Path) -> tuple[dict[str, dict], dict[str, str]]:
    """Every DVC metric of the workspace: ({metrics file: its values}, {metrics file: why unreadable}).

    Values as `dvc metrics show --json` reads them (nested dicts of numbers and strings; DVC drops lists)."""
    shown = json.loads(dvc(root, "metrics", "show", "--json").stdout or "{}")
    # One revision, the workspace (DVC names it "" or "workspace" depending on the repo state).
    workspace = next(iter(shown.values()), {})
    if "error" in workspace:
        raise RuntimeError(f"`dvc metrics show` in {root} failed: {workspace['error']}")
    metrics, errors = {}, {}
    for path, entry in sorted(workspace.get("data", {}).items()):
        if "error" in entry:
            errors[path] = str(entry["error"].get("msg") or entry["error"].get("type") or entry["error"])
        else:
            metrics[path] = entry.get("data", {})
    return metrics, errors


def status(root: Path, stages: list[str]) -> dict:
    """`dvc status --json` of `stages` (and what they depend on); {} when the workspace matches dvc.lock."""
    if not stages:
        return {}
    return json.loads(dvc(root, "status", "--json", *stages).stdout or "{}")


def git_commit(root: Path) -> str | None:
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None
