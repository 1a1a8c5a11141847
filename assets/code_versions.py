"""Code versions for assets: a hash of the source files a stage runs, so the UI shows what is stale.

The files are the stage's code deps in `dvc.yaml`, derived from its imports (pipelines/stage_code.py): the UI
and `dvc status` call a stage stale after the same edits.
"""

from __future__ import annotations

from pipelines.stage_code import code_deps, code_version, stage_code_deps


def stage_code_version(stage: str) -> str:
    """The code version of the asset(s) over stage `stage` of pipelines/stages.py."""
    return code_version(stage_code_deps(stage))


def module_code_version(*modules: str) -> str:
    """The code version of an asset that is no DVC stage and runs `modules` (e.g. `pipelines.run_records`)."""
    return code_version(code_deps(modules))
