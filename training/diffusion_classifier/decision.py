"""From a two-class vote to a ranking score and a decision that is not degenerate on imbalanced classes.

Scores of the last class (malignant), from each image's computed trials (evaluation.ranking_scores on prefixes):
  vote_share  the fraction of trials the last class wins: the paper's vote (Appendix A) as a ranking;
  error_gap   the mean over trials of err_first - err_last: Li et al.'s averaging as a ranking.
Both grow with the evidence for the last class. As a value in [0, 1] (the fairness predictions' `score`), the
vote share is itself; the error gap is sigmoid(gap / scale) with scale = the gaps' standard deviation on the
validation split, a monotone map (the AUC is the gap's) with 0.5 <=> gap 0 <=> the averaging decision.

The decision, the reweighted vote: the last class iff score >= tau, tau chosen on the validation split by the
report's threshold rule (Youden / fixed validation specificity / fixed). For the vote share this is the majority
vote with the last class's votes weighted by w = (1 - tau) / tau: w * v_last >= v_first <=> share >= tau, a
class-prior correction (posterior odds = likelihood odds x prior odds). The plain majority (tau = 0.5) leans to
the commoner class on imbalanced data when the rarer class's conditional model fits worse (its errors are larger
at every t) while its ranking is still good: the 300-image demo's vote called every test image benign; on the
613-lesion demo it has test sensitivity 0.53 at specificity 0.93 (docs/benchmarks.md). Ties (score = tau) go to
the last class, the fairness report's convention (the paper's plain majority gives them to the first class).

Confidence of the decision: p = odds-shifted score, logit p = logit score - logit tau, i.e.
p = s (1 - tau) / (s (1 - tau) + (1 - s) tau) (for the vote share, the weighted vote share of the last class);
confidence = max(p, 1 - p), uncertainty = the binary entropy of p in bits. At tau = 0.5 these are the paper's
vote share of the winner and vote entropy (Section 2.3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from training.diffusion_classifier.classify import DiffusionClassification

Score = Literal["vote_share", "error_gap"]
SCORES: tuple[Score, ...] = ("vote_share", "error_gap")


def raw_score(result: DiffusionClassification, score: str) -> torch.Tensor:
    """(n,) float64 score of the last class from each image's computed trials (see the module docstring)."""
    if len(result.classes) != 2:
        raise ValueError(f"classes {result.classes}: ranking scores are for two classes")
    if score == "vote_share":
        votes = result.votes.double()
        return votes[:, -1] / votes.sum(dim=1)
    if score == "error_gap":
        mean = result.mean_error.double()
        return mean[:, 0] - mean[:, -1]
    raise ValueError(f"score {score!r}: expected one of {SCORES}")


def error_gap_scale(validation_gaps: torch.Tensor) -> float:
    """The standard deviation of the validation gaps (1.0 when it is zero or undefined)."""
    if validation_gaps.numel() < 2:
        return 1.0
    scale = float(validation_gaps.double().std())
    return scale if math.isfinite(scale) and scale > 0 else 1.0


def unit_score(raw: torch.Tensor, score: str, scale: float = 1.0) -> np.ndarray:
    """The raw score as a value in [0, 1], monotone: the vote share as is, the error gap as sigmoid(gap / scale)."""
    raw = raw.double()
    if score == "vote_share":
        return raw.numpy()
    if score == "error_gap":
        return torch.sigmoid(raw / scale).numpy()
    raise ValueError(f"score {score!r}: expected one of {SCORES}")


@dataclass(frozen=True)
class ScoreRule:
    """Which score ranks the images and how it is put in [0, 1] (scale: the error gap's validation SD)."""

    score: str
    scale: float = 1.0

    @classmethod
    def fit(cls, score: str, validation: DiffusionClassification) -> ScoreRule:
        scale = error_gap_scale(raw_score(validation, score)) if score == "error_gap" else 1.0
        return cls(score=score, scale=scale)

    def __call__(self, result: DiffusionClassification) -> np.ndarray:
        return unit_score(raw_score(result, self.score), self.score, self.scale)


@dataclass(frozen=True)
class Decision:
    positive: np.ndarray  # (n,) 1 = the last class (malignant), 0 = the first
    probability: np.ndarray  # (n,) p of the last class after the prior shift (0.5 at the threshold)
    confidence: np.ndarray  # (n,) max(p, 1 - p)
    uncertainty_bits: np.ndarray  # (n,) binary entropy of p


def reweighted_decision(score: np.ndarray, threshold: float) -> Decision:
    """The reweighted vote on [0, 1] scores at the validation threshold tau (see the module docstring)."""
    s = np.asarray(score, dtype=np.float64)
    tau = float(threshold)
    positive = (s >= tau).astype(np.int64)
    numerator = s * (1.0 - tau)
    denominator = numerator + (1.0 - s) * tau
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), 0.5)
    p = np.clip(p, 0.0, 1.0)
    confidence = np.maximum(p, 1.0 - p)
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = [np.where(q > 0, -q * np.log2(np.where(q > 0, q, 1.0)), 0.0) for q in (p, 1.0 - p)]
    return Decision(positive=positive, probability=p, confidence=confidence, uncertainty_bits=terms[0] + terms[1])


def decision_rule_text(score: str, threshold: float) -> str:
    """The rule in words, for metrics.json."""
    tau = float(threshold)
    weight = "inf" if tau <= 0 else f"{(1 - tau) / tau:.4g}"
    if score == "vote_share":
        return (f"reweighted majority: malignant iff w * malignant votes >= benign votes, w = (1 - t) / t = {weight} "
                f"(t = {tau:.6g}, the validation threshold on the malignant vote share; w = 1 is the paper's vote)")
    return (f"shifted average: malignant iff sigmoid(mean(err_benign - err_malignant) / scale) >= {tau:.6g} "
            "(the validation threshold; 0.5 is Li et al.'s lower-mean-error decision)")
