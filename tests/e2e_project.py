"""A throw-away copy of this project (tracked + untracked, not ignored files) in its own git repo.

End-to-end tests run the real commands (`dagster asset materialize`, `dvc status`, `dvc repro`) there,
so they never touch the checkout's data/ or dvc.lock.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "DVC_NO_ANALYTICS": "1", "HF_HUB_OFFLINE": "1", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
       "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@localhost", "GIT_COMMITTER_NAME": "test",
       "GIT_COMMITTER_EMAIL": "test@localhost"}


def copy_project(target: Path, prepare: Callable[[Path], None] | None = None) -> Path:
    """Copy the project to `target`; `prepare(target)` may edit it (e.g. params) before the first commit."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    for name in files:
        if (REPO / name).is_file() and not name.startswith(("data/", "dvc.lock")):
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    (target / ".dagster").mkdir(exist_ok=True)
    if prepare is not None:
        prepare(target)
    run(target, "git", "init", "-q")
    run(target, "git", "add", "-A")
    run(target, "git", "commit", "-qm", "copy")
    return target


def run(cwd: Path, *command: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                          env={**ENV, "DAGSTER_HOME": str(cwd / ".dagster"), **(env or {})})
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-4000:]}\n"
                             f"{done.stderr[-4000:]}")
    return done
