"""The one resource the assets share: where params.yaml is, and DVC bookkeeping after each stage.

After a stage function has written its outputs, `dvc commit` records them (and the deps and params they
came from) in dvc.lock, so `dvc status` is clean and `dvc repro` has nothing to redo; the DVC hash of an
output becomes the asset's Dagster data version.
"""

from __future__ import annotations

import time
from pathlib import Path

from dagster import ConfigurableResource

from pipelines.config import Params, load_params
from pipelines.dvc_cli import dvc
from pipelines.run_records.lock import out_hashes

LOCK_RETRIES = 10


class PipelineResource(ConfigurableResource):
    """Paths are relative to the working directory, the project root (as under `dvc repro`)."""

    params_file: str = "params.yaml"
    dvc_commit: bool = True  # record outputs in dvc.lock after each materialization

    def params(self) -> Params:
        return load_params(self.params_file)

    def commit(self, stage: str) -> dict[str, str]:
        """`dvc commit` the stage; returns {output path: md5} from dvc.lock ({} when disabled)."""
        if not self.dvc_commit:
            return {}
        for attempt in range(LOCK_RETRIES):
            done = dvc(Path.cwd(), "commit", "--force", "--quiet", stage, check=False)
            # GPU-pool assets may finish while a workspace-pool asset commits: wait for DVC's lock, then retry.
            if done.returncode == 0 or "lock" not in (done.stdout + done.stderr).lower():
                break
            time.sleep(2 * (attempt + 1))
        if done.returncode != 0:
            raise RuntimeError(f"`dvc commit --force {stage}` failed:\n{done.stdout}{done.stderr}")
        return out_hashes(Path("dvc.lock"), [stage])[stage]
