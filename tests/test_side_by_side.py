"""Training stages side by side: each stage's own CLI in its own process; a failure names the stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pipelines.class_n_diff.side_by_side import train_side_by_side

REPO = Path(__file__).resolve().parents[1]


def test_each_stage_runs_its_cli_and_failures_name_the_stage(tmp_path: Path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data_root"] = str(tmp_path / "data")
    params["demo_data"] |= {"n_images": 60, "n_ddi": 6}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    train_side_by_side(["demo_data"], tmp_path / "params.yaml", cwd=REPO)
    summary = json.loads((tmp_path / "data/raw/demo/demo_summary.json").read_text())
    assert summary["params"]["n_images"] == 60
    with pytest.raises(RuntimeError, match="stage no_such_stage exited with 2"):
        train_side_by_side(["demo_data", "no_such_stage"], tmp_path / "params.yaml", cwd=REPO)
