"""The decision threshold, chosen once per classifier on its validation predictions (METHOD.md §5).

Rule ("youden"): a lesion is called malignant when score >= t. The candidates are the distinct
validation scores; t maximises Youden's J = sensitivity + specificity - 1 on validation, ties go to
the lowest such t (in screening a missed melanoma costs more than a biopsy). J is compared in exact
integer arithmetic (J * P * N), so rounding never breaks a tie. With an empty validation set or one
that has a single class, sensitivity or specificity is undefined and t = 0.5 (the fallback).

Rule ("specificity"): the lowest t at which validation specificity reaches a target (e.g. 0.8). It rests on
the benign scores alone, so with few malignant validation lesions it moves far less from one training seed
to the next than Youden's t does, and every classifier works at the same false-positive rate: its
sensitivities are then comparable (sensitivity at fixed specificity, a usual way to compare dermatology
classifiers).
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


def specificity_rule(target: float) -> str:
    return (f"the lowest t at which validation specificity reaches {target:g} (malignant when score >= t); "
            f"{FALLBACK_THRESHOLD} when validation holds no benign lesion")


def specificity_choice(labels: np.ndarray, scores: np.ndarray, target: float) -> ThresholdChoice:
    """The lowest distinct validation score t with (benign scores < t) / benign >= target."""
    if not 0 < target < 1:
        raise ValueError(f"target specificity {target}: expected in (0, 1)")
    labels = np.asarray(labels).astype(int)
    scores = np.asarray(scores, dtype=float)
    negatives = np.sort(scores[labels == 0])
    n_neg, n_pos = len(negatives), int((labels == 1).sum())
    if n_neg == 0:
        return ThresholdChoice(FALLBACK_THRESHOLD, "fallback",
                               f"validation has no benign lesion: threshold {FALLBACK_THRESHOLD}")
    needed = int(np.ceil(target * n_neg - 1e-9))  # benign lesions that must score below t
    # Candidates: the validation scores, plus one above them all (specificity 1 needs t > every benign score).
    candidates = np.append(np.unique(scores), np.nextafter(scores.max(), np.inf))
    true_neg = np.searchsorted(negatives, candidates, side="left")
    best = int(np.argmax(true_neg >= needed))  # the first (lowest) t that reaches the target
    t = float(candidates[best])
    sensitivity = float((scores[labels == 1] >= t).mean()) if n_pos else float("nan")
    return ThresholdChoice(t, "specificity",
                           f"validation specificity {true_neg[best] / n_neg:.4f} (target {target:g}) on "
                           f"{n_pos + n_neg} validation images (sensitivity {sensitivity:.4f})")


def threshold_for(labels: np.ndarray, scores: np.ndarray, rule: str, fixed: float = FALLBACK_THRESHOLD,
                  target_specificity: float = 0.8) -> ThresholdChoice:
    """The threshold by the configured rule: "youden" or "specificity" on the validation predictions, or
    "fixed"."""
    if rule == "fixed":
        return ThresholdChoice(float(fixed), "fixed", f"fixed threshold {fixed}")
    if rule == "youden":
        return youden_choice(labels, scores)
    if rule == "specificity":
        return specificity_choice(labels, scores, target_specificity)
    raise ValueError(f"threshold rule {rule!r}: expected 'youden', 'specificity' or 'fixed'")


def rule_text(rule: str, fixed: float = FALLBACK_THRESHOLD, target_specificity: float = 0.8) -> str:
    """The rule in words, for the reports."""
    if rule == "youden":
        return YOUDEN_RULE
    if rule == "specificity":
        return specificity_rule(target_specificity)
    return f"fixed threshold {fixed}"


def predict(scores: np.ndarray, threshold: float) -> np.ndarray:
    """1 where the lesion is called malignant (score >= threshold), else 0."""
    return (np.asarray(scores, dtype=float) >= threshold).astype(np.int64)
