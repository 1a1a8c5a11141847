"""Parameters of the run records: where they go, which outs are "the model", whether to `dvc push`.

The demo and the real profile use the same values; on the real profile configure a DVC remote
(`dvc remote add -d storage s3://bucket/fairskin`) and every record pushes its artifacts there.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# The stages whose outs make up a promoted model: the trained Class-N-Diff (DiT + latent classifier),
# the DiT baseline, the synthetic shards it generated and the downstream classifiers trained on them.
MODEL_STAGES = ("class_n_diff_model", "dit_baseline", "synthetic_shards", "downstream_classifiers")


class RunRecordsParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    out: str = "runs"  # relative to data_root: data/runs/<date>-<run id>/
    fairness_summary: str = "fairness_report/report.md"  # copied into each record when it exists
    push: bool = True  # `dvc push` after each run when a remote is configured (no remote: nothing to do)
    model_stages: list[str] = Field(default_factory=lambda: list(MODEL_STAGES))
