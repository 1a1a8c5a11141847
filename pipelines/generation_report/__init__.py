"""Generative quality of the synthetic samples: FID, precision/recall, MS-SSIM, Figs 2-3 (METHOD.md §5)."""

from pipelines.generation_report.feature_networks import (
    ClassifierFeatures,
    InceptionFeatures,
    inception_v3_from_file,
)
from pipelines.generation_report.fid import extract_features, fid, fid_at_counts, frechet_distance, gaussian_fit
from pipelines.generation_report.ms_ssim import ms_ssim, ms_ssim_settings, pair_ms_ssim, random_pairs
from pipelines.generation_report.params import GenerationReportParams
from pipelines.generation_report.precision_recall import precision_recall
from pipelines.generation_report.stage import GenerationReportOutputs, output_paths, run_generation_report

__all__ = ["ClassifierFeatures", "GenerationReportOutputs", "GenerationReportParams", "InceptionFeatures",
           "extract_features", "fid", "fid_at_counts", "frechet_distance", "gaussian_fit", "inception_v3_from_file",
           "ms_ssim", "ms_ssim_settings", "output_paths", "pair_ms_ssim", "precision_recall", "random_pairs",
           "run_generation_report"]
