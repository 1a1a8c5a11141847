"""The `downstream_classifiers` stage: baseline (real only) vs augmented (real + synthetic) timm classifiers."""

from pipelines.downstream_classifiers.stage import DownstreamOutputs, output_paths, run_downstream_classifiers
from training.downstream.params import DownstreamParams

__all__ = ["DownstreamOutputs", "DownstreamParams", "output_paths", "run_downstream_classifiers"]
