"""The stages, by name: what `dvc.yaml` (through the CLI) and the Dagster assets both run.

A stage is a plain function `run(params) -> outputs` (it writes files and returns their paths and a
summary) plus, where the stage's output is validated, `check(params) -> ValidationReport`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.config import Params
from pipelines.validation.report import ValidationReport


def run_demo_data(params: Params) -> Any:
    from pipelines.demo_data.generate import generate_demo_data

    return generate_demo_data(params.demo_data, params.path(params.demo_data_out))


def run_lesions(params: Params) -> Any:
    from pipelines.lesions.stage import run_lesions as run

    return run(params)


def check_lesions(params: Params) -> ValidationReport:
    from pipelines.lesions.stage import output_paths
    from pipelines.validation import validate_lesions

    path = output_paths(params)["lesions"]
    return validate_lesions(pd.read_parquet(path), Path(params.data_root), params.lesions.validation, str(path))


def run_skin_tone(params: Params) -> Any:
    from pipelines.skin_tone.report import run_skin_tone as run

    return run(params)


def run_external_sets(params: Params) -> Any:
    from pipelines.external_sets.stage import run_external_sets as run

    return run(params)


def check_external_sets(params: Params) -> ValidationReport:
    from pipelines.external_sets.stage import output_paths
    from pipelines.validation import validate_external_sets

    path = output_paths(params)["table"]
    return validate_external_sets(pd.read_parquet(path), Path(params.data_root), str(path))


@dataclass(frozen=True)
class Stage:
    run: Callable[[Params], Any]
    check: Callable[[Params], ValidationReport] | None = None


STAGES: dict[str, Stage] = {
    "demo_data": Stage(run_demo_data),
    "lesions": Stage(run_lesions, check_lesions),
    "skin_tone": Stage(run_skin_tone),
    "external_sets": Stage(run_external_sets, check_external_sets),
}
