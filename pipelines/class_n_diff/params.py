"""Parameters of the `class_n_diff_model` and `dit_baseline` stages (params.yaml key `class_n_diff`).

`train` is the typed training config of `training.class_n_diff.params.TrainParams` (the same type the loop
reads; its docstring lists the real-profile values: DiT-L/4, ResNet-101, 200k steps, batch 8, lr 1e-4,
EMA 0.9999). `train.preset` picks the Table I setting of `class_n_diff_model` (default setting3); the
`dit_baseline` stage trains the same DiT with `setting1` (no classifier) for comparison.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from training.class_n_diff.params import TrainParams


class ClassNDiffParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    train: TrainParams = TrainParams()
    train_split: str = "train"  # latent-shard splits read when the stage is given the shards folder
    val_split: str = "val"
    out: str = "class_n_diff"  # run folder of class_n_diff_model (a DVC out, persistent so a run resumes; its
    # checkpoints live in <checkpoints>/class_n_diff, no DVC out: params `checkpoints`)
    baseline_out: str = "dit_baseline"  # run folder of dit_baseline
    # Report folders beside the run folders (DVC forbids a metrics/plots file inside an out): final_metrics.json
    # (dvc metrics), loss_curve.csv (dvc plots, x = step), loss_curve.png and the last sample grid (sample_grid.png)
    report_out: str = "class_n_diff_report"
    baseline_report_out: str = "dit_baseline_report"
    # Dagster trains class_n_diff_model and dit_baseline at once, one process each (side_by_side.py) when both
    # are materialized together: on the CPU demo that uses both cores. Real profile on one GPU: false.
    side_by_side: bool = True


__all__ = ["ClassNDiffParams", "TrainParams"]
