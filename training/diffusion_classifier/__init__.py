"""The conditional diffusion model as a classifier that explains itself (METHOD.md §6; second paper)."""

from training.diffusion_classifier.classify import DiffusionClassification, classify_latents, classify_naive
from training.diffusion_classifier.counterfactual import CounterfactualExplanation, explain_counterfactual
from training.diffusion_classifier.evaluation import (
    accuracy_vs_trials,
    auc_by_t,
    auc_vs_trials,
    confidence_by_outcome,
    informative_t_range,
    ranking_scores,
    retention_curve,
    sufficient_trials,
    vote_accuracy_by_t,
)
from training.diffusion_classifier.params import DiffusionClassifierParams

__all__ = [
    "CounterfactualExplanation",
    "DiffusionClassification",
    "DiffusionClassifierParams",
    "accuracy_vs_trials",
    "auc_by_t",
    "auc_vs_trials",
    "classify_latents",
    "classify_naive",
    "confidence_by_outcome",
    "explain_counterfactual",
    "informative_t_range",
    "ranking_scores",
    "retention_curve",
    "sufficient_trials",
    "vote_accuracy_by_t",
]
