"""The `diffusion_classifier_report` stage: the conditional DiT classifies, explains itself and says when it
is unsure (METHOD.md §6; issue 7; the second paper). See stage.py for what it writes."""

from pipelines.diffusion_classifier_report.params import DiffusionClassifierReportParams
from pipelines.diffusion_classifier_report.stage import (
    DiffusionClassifierReportOutputs,
    build_report,
    load_split,
    output_paths,
    run_diffusion_classifier_report,
)

__all__ = [
    "DiffusionClassifierReportOutputs",
    "DiffusionClassifierReportParams",
    "build_report",
    "load_split",
    "output_paths",
    "run_diffusion_classifier_report",
]
