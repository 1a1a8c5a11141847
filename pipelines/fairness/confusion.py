"""Binary classification metrics computed from counts per distinct score, for one sample or many.

A group's predictions are reduced to the sorted distinct scores u_1 < ... < u_U and, per sample (the
original data or a bootstrap resample), how many positives and negatives sit at each u_k. From those
counts every metric is a sum, so B resamples are scored at once with numpy, no sort per resample:

    AUC = sum_k pos_k * (neg_below_k + neg_k / 2) / (P * N)   (Mann-Whitney U with midranks = ROC area)
    TP  = sum over u_k >= threshold of pos_k,  FP likewise with neg_k.

The threshold rule is pipelines.fairness.threshold.predict: malignant when score >= threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METRICS = ("auc", "accuracy", "sensitivity", "specificity", "balanced_accuracy", "selection_rate", "fpr")


@dataclass(frozen=True)
class RankedGroup:
    """One group's predictions as distinct scores and the index of each positive/negative's score."""

    values: np.ndarray  # (U,) sorted distinct scores
    positive_at: np.ndarray  # (P,) index into `values` of each positive's score
    negative_at: np.ndarray  # (N,)

    @classmethod
    def of(cls, labels: np.ndarray, scores: np.ndarray) -> RankedGroup:
        labels = np.asarray(labels).astype(bool)
        values, at = np.unique(np.asarray(scores, dtype=float), return_inverse=True)
        return cls(values, at[labels], at[~labels])

    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(1, U) positive and negative counts of the data itself."""
        size = len(self.values)
        return (np.bincount(self.positive_at, minlength=size)[None, :],
                np.bincount(self.negative_at, minlength=size)[None, :])


def metrics_from_counts(positive: np.ndarray, negative: np.ndarray, called: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric of METRICS for each row of the (B, U) count matrices; `called` (U,) marks the
    distinct scores at or above the threshold. Undefined values (no positives / no negatives) are NaN."""
    positive, negative = positive.astype(np.int64), negative.astype(np.int64)
    n_pos, n_neg = positive.sum(axis=1), negative.sum(axis=1)
    n = n_pos + n_neg
    true_pos = positive[:, called].sum(axis=1)
    false_pos = negative[:, called].sum(axis=1)
    true_neg = n_neg - false_pos
    neg_below = np.cumsum(negative, axis=1) - negative
    twice_u = (positive * (2 * neg_below + negative)).sum(axis=1)  # integer: exact for any realistic size
    with np.errstate(divide="ignore", invalid="ignore"):
        sensitivity = np.where(n_pos > 0, true_pos / n_pos, np.nan)
        specificity = np.where(n_neg > 0, true_neg / n_neg, np.nan)
        return {
            "auc": np.where((n_pos > 0) & (n_neg > 0), twice_u / (2.0 * n_pos * n_neg), np.nan),
            "accuracy": np.where(n > 0, (true_pos + true_neg) / n, np.nan),
            "sensitivity": sensitivity,
            "specificity": specificity,
            "balanced_accuracy": (sensitivity + specificity) / 2,
            "selection_rate": np.where(n > 0, (true_pos + false_pos) / n, np.nan),
            "fpr": 1 - specificity,
        }


def binary_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """n, positives and every metric of METRICS for one set of predictions, plus a `note` saying which
    metrics are undefined and why (a group with no malignant lesions has no AUC or sensitivity)."""
    labels = np.asarray(labels).astype(int)
    group = RankedGroup.of(labels, scores)
    values = metrics_from_counts(*group.counts(), group.values >= threshold)
    n, n_pos = len(labels), int(labels.sum())
    result: dict = {"n": n, "positives": n_pos, **{name: float(v[0]) for name, v in values.items()}}
    result["note"] = undefined_note(n, n_pos)
    return result


def undefined_note(n: int, positives: int) -> str:
    if n == 0:
        return "no images: every metric undefined"
    if positives == 0:
        return "no malignant: AUC, sensitivity, balanced accuracy undefined"
    if positives == n:
        return "no benign: AUC, specificity, FPR, balanced accuracy undefined"
    return ""
