"""metrics.json of the report: ISIC test metrics with CIs at the validation threshold, the cost of the vote,
the tuned vote with its validation evidence, the decision rule, the full vote (the figures' reference) against
the report's vote, and every classified test set scored per subgroup."""

from __future__ import annotations

import math

import torch

from pipelines.diffusion_classifier_report.rows import CLASSIFIER
from pipelines.diffusion_classifier_report.tuning import Tuning
from pipelines.fairness.threshold import ThresholdChoice
from training.diffusion_classifier import DiffusionClassification

TEST_SET, VALIDATION_SET = "isic_test", "isic_val"
PAPER_NETWORK_EVALS = 1002  # 501 trials x 2 classes per image (paper, Table 1 caption and Section 3)


def finite(value: object) -> object:
    """NaN -> None, recursively (JSON has no NaN; DVC metrics need valid JSON)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def vote_cost(result: DiffusionClassification, labels: torch.Tensor, seconds: float) -> dict[str, float]:
    """The plain vote's own accuracy (majority or average as the vote's mode, ties -> benign; threshold-free; the
    report's decision is `accuracy`, at the validation threshold) and what it cost per image."""
    n = int(result.predicted.numel())
    evals = float(result.network_evals.double().mean()) if n else float("nan")
    return {"vote_accuracy": float((result.predicted == labels).double().mean()) if n else float("nan"),
            "mean_trials_used": float(result.trials_used.double().mean()) if n else float("nan"),
            "mean_network_evals": evals,
            "network_eval_reduction_vs_paper": PAPER_NETWORK_EVALS / evals if n else float("nan"),
            "images_per_s": n / seconds if seconds > 0 else float("nan"),
            "seconds_per_image": seconds / n if n else float("nan")}


def metrics_json(overall: dict, threshold: ThresholdChoice, result: DiffusionClassification, seconds: float,
                 tuning: Tuning, full: DiffusionClassification, full_seconds: float, labels: torch.Tensor,
                 validation: DiffusionClassification, model_version: str, device: str,
                 test_sets: dict[str, dict], decision: dict, reference: dict) -> dict:
    """Test metrics (the fairness report's functions, at the validation threshold), cost, and the vote.

    `test_sets`: test set -> its fairness metrics and gaps (scoring.py) merged with its vote_cost.
    `decision`: the score, its scale and the decision rule in words; `reference`: the full vote's test AUCs and
    the report's vote minus the full vote (stage.reference_comparison).
    """
    n = int(result.predicted.numel())
    metrics = {
        "classifier": CLASSIFIER, "test_set": TEST_SET, "model_version": model_version, "device": device,
        **{k: overall[k] for k in ("n", "positives", "accuracy", "auc", "sensitivity", "specificity",
                                   "balanced_accuracy")},
        **{f"{k}_{end}": overall[f"{k}_{end}"] for k in ("accuracy", "auc", "sensitivity", "specificity")
           for end in ("low", "high")},
        "threshold": threshold.threshold, "threshold_rule": threshold.rule, "threshold_note": threshold.note,
        "score": decision["score"], "score_scale": decision["score_scale"], "decision_rule": decision["rule"],
        "validation_decision_accuracy": decision["validation_accuracy"],
        **vote_cost(result, labels, seconds),
        "t_range": list(tuning.classifier.t_range), "n_trials": tuning.classifier.n_trials, "tuned": tuning.tuned,
        "early_stop": tuning.classifier.early_stop, "mode": tuning.classifier.mode,
        "tuning_network_evals": tuning.network_evals, "tuning": tuning.summary(),
        "validation_mean_network_evals": float(validation.network_evals.double().mean()),
        "full_vote": {
            "n_trials": int(full.errors.shape[2]),
            **reference,
            "vote_accuracy": float((full.predicted == labels).double().mean()) if n else float("nan"),
            "agreement_with_report_vote": float((full.predicted == result.predicted).double().mean())
            if n else float("nan"),
            "mean_network_evals": float(full.network_evals.double().mean()) if n else float("nan"),
            "images_per_s": n / full_seconds if full_seconds > 0 else float("nan"),
        },
        "test_sets": test_sets,
    }
    return finite(metrics)
