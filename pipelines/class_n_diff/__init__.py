"""The `class_n_diff_model` and `dit_baseline` stages: Class-N-Diff joint training and the DiT-only comparison."""

from pipelines.class_n_diff.params import ClassNDiffParams, TrainParams
from pipelines.class_n_diff.stage import ClassNDiffOutputs, run_class_n_diff, run_dit_baseline

__all__ = ["ClassNDiffOutputs", "ClassNDiffParams", "TrainParams", "run_class_n_diff", "run_dit_baseline"]
