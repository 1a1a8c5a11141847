"""The decision threshold, chosen once per classifier on its validation predictions (METHOD.md §5).

Rule ("youden"): a lesion is called malignant when score >= t. The candidates are the distinct
validation scores; t maximises Youden's J = sensitivity + specificity - 1 on validation, ties go to
the lowest such t (in screening a missed melanoma costs more than a biopsy). J is compared in exact
integer arithmetic (J * P * N), so rounding never breaks a tie. With an empty validation set or one
that has a single class, sensitivity or specificity is undefined and t = 0.5 (the fallback).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FALLBACK_THRESHOLD = 0.5
YOUDEN_RULE = ("maximise Youden's J = sensitivity + specificity - 1 over the distinct validation scores "
               "(malignant when score >= t); ties -> the lowest t; 0.5 when validation lacks a class")


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float
    rule: str  # "youden", "fixed", or "fallback"
    note: str  # why, in words (goes to the report)


def choose_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The Youden threshold of these validation predictions (see the module docstring)."""
    return youden_choice(labels, scores).threshold


def youden_choice(labels: np.ndarray, scores: np.ndarray) -> ThresholdChoice:
    labels = np.asarray(labels).astype(int)
    scores = np.asarray(scores, dtype=float)
    positives, negatives = np.sort(scores[labels == 1]), np.sort(scores[labels == 0])
    n_pos, n_neg = len(positives), len(negatives)
    if n_pos == 0 or n_neg == 0:
        return ThresholdChoice(FALLBACK_THRESHOLD, "fallback",
                               f"validation has {n_pos} malignant and {n_neg} benign: threshold {FALLBACK_THRESHOLD}")
    candidates = np.unique(scores)  # ascending
    true_pos = n_pos - np.searchsorted(positives, candidates, side="left")  # positives with score >= t
    true_neg = np.searchsorted(negatives, candidates, side="left")  # negatives with score < t
    j_scaled = true_pos.astype(np.int64) * n_neg + true_neg.astype(np.int64) * n_pos  # (J + 1) * P * N
    best = int(np.argmax(j_scaled))  # argmax returns the first maximum: the lowest threshold
    j = j_scaled[best] / (n_pos * n_neg) - 1
    return ThresholdChoice(float(candidates[best]), "youden",
                           f"Youden's J = {j:.4f} on {n_pos + n_neg} validation images "
                           f"(sensitivity {true_pos[best] / n_pos:.4f}, specificity {true_neg[best] / n_neg:.4f})")


def threshold_for(labels: np.ndarray, scores: np.ndarray, rule: str, fixed: float = FALLBACK_THRESHOLD
                  ) -> ThresholdChoice:
    """The threshold by the configured rule: "youden" on the validation predictions, or "fixed"."""
    if rule == "fixed":
        return ThresholdChoice(float(fixed), "fixed", f"fixed threshold {fixed}")
    if rule == "youden":
        return youden_choice(labels, scores)
    raise ValueError(f"threshold rule {rule!r}: expected 'youden' or 'fixed'")


def predict(scores: np.ndarray, threshold: float) -> np.ndarray:
    """1 where the lesion is called malignant (score >= threshold), else 0."""
    return (np.asarray(scores, dtype=float) >= threshold).astype(np.int64)
