"""The `generation_plan` stage: lesions table -> how many synthetic samples each cell needs.

Outputs `plan.parquet` (the table the `synthetic_shards` stage reads: cell, label, skin_tone_group, sex,
real, target, to_generate) and `report.json` (the same table as records plus totals, for the UI and
`dvc metrics`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipelines.atomic_files import write_json, write_parquet
from pipelines.generation_plan.params import GenerationPlanParams
from pipelines.generation_plan.plan import compute_plan, real_counts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationPlanOutputs:
    plan: Path
    report: Path
    summary: dict


def output_paths(out_dir: Path) -> dict[str, Path]:
    return {"plan": out_dir / "plan.parquet", "report": out_dir / "report.json"}


def run_generation_plan(params: GenerationPlanParams, lesions_path: Path, out_dir: Path) -> GenerationPlanOutputs:
    lesions = pd.read_parquet(lesions_path)
    counts = real_counts(lesions, params.split, params.by_sex)
    plan = compute_plan(counts, params)
    in_split = lesions["split"] == params.split
    summary = {
        "policy": params.policy,
        "equalize_benign": params.equalize_benign if params.policy == "equalize" else None,
        "split": params.split,
        "by_sex": params.by_sex,
        "real_in_cells": int(plan["real"].sum()),
        # rows of the split that belong to no cell (unknown skin tone, or unknown sex when by_sex)
        "real_outside_cells": int(in_split.sum() - plan["real"].sum()),
        "to_generate": int(plan["to_generate"].sum()),
        "cells": plan.astype(object).where(plan.notna(), None).to_dict(orient="records"),
        "table_markdown": plan.to_markdown(index=False),
    }
    paths = output_paths(out_dir)
    write_parquet(plan, paths["plan"])
    write_json(summary, paths["report"])
    log.info("generation plan (%s): %d samples to generate over %d cells", params.policy, summary["to_generate"],
             int((plan["to_generate"] > 0).sum()))
    return GenerationPlanOutputs(summary=summary, **paths)
