"""The speed/accuracy comparison of ways to vote, on one model and one set of test latents (issue 7 §3).

Every variant classifies the same latents with the same trial seeds, so each is compared with the batched
full vote image by image: agreement, and the paired accuracy difference with its standard error (small test
sets make the unpaired difference useless). Cost is network evaluations per image (one latent through the
network) against the paper's 501 trials x 2 classes = 1002, and wall-clock images/s.

  (a)  naive loop: the paper's Appendix A, one forward of batch 1 per class per trial (first images only)
  (b)  batched full vote, n_trials of the base vote (the paper's 501)
  (c)  (b) with exact early stop: the prediction of (b) by construction
  (d)  (b) with predictive early stop (risk of differing from (b) below early_stop_risk)
  (d') (d) with i.i.d. t instead of stratified t
  (e)  predictive early stop with the t range and trial budget tuned on validation
  (e') exact early stop with the tuned t range and budget (the diffusion_classifier_report's vote)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

from training.diffusion.schedule import DiffusionSchedule
from training.diffusion_classifier.classify import DiffusionClassification, classify_latents, classify_naive
from training.diffusion_classifier.denoiser import Denoiser
from training.diffusion_classifier.params import DiffusionClassifierParams

PAPER_NETWORK_EVALS = 1002  # 501 trials x 2 classes per image (paper, Table 1 caption and Section 3)
GOAL_FACTOR, GOAL_TOLERANCE = 20.0, 0.01  # issue 7: >= 20x fewer evaluations, accuracy within 1 point of (b)
AUC_RESAMPLES = 1000  # paired bootstrap of the AUC difference from the full vote


@dataclass(frozen=True)
class LabelledLatents:
    latents: torch.Tensor  # (n, C, H, W)
    labels: torch.Tensor  # (n,) class values
    conditions: dict[str, torch.Tensor] = field(default_factory=dict)  # other condition tokens, (n,) each
    image_ids: list[int] | None = None  # trial seeds; None = positions

    def head(self, k: int) -> LabelledLatents:
        return LabelledLatents(self.latents[:k], self.labels[:k], {n: v[:k] for n, v in self.conditions.items()},
                               None if self.image_ids is None else self.image_ids[:k])


def vote(model: Denoiser, data: LabelledLatents, params: DiffusionClassifierParams, schedule: DiffusionSchedule,
         naive: bool = False) -> tuple[DiffusionClassification, float]:
    """(the classification, wall-clock seconds)."""
    classify = classify_naive if naive else classify_latents
    start = time.perf_counter()
    result = classify(model, data.latents, params, schedule, conditions=data.conditions, image_ids=data.image_ids,
                      progress=False)
    return result, time.perf_counter() - start


def positive_share(result: DiffusionClassification) -> torch.Tensor:
    """(n,) vote share of the last class (malignant = 1): the score behind the AUC."""
    votes = result.votes.double()
    return votes[:, -1] / votes.sum(dim=1)


def error_gap(result: DiffusionClassification) -> torch.Tensor:
    """(n,) mean error of the first class minus that of the last (benign - malignant) over the computed trials:
    the continuous score beside the vote share (evaluation.ranking_scores)."""
    mean = result.mean_error.double()
    return mean[:, 0] - mean[:, -1]


def rank_auc(positive: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of (B, n) `scores` against the (B, n) 0/1 `positive` (Mann-Whitney U with midranks);
    NaN for a row with one class."""
    ranks = rankdata(scores, axis=1)
    n_pos = positive.sum(axis=1)
    n_neg = positive.shape[1] - n_pos
    u = (ranks * positive).sum(axis=1) - n_pos * (n_pos + 1) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)


def paired_auc_difference(labels: torch.Tensor, score: torch.Tensor, reference_score: torch.Tensor,
                          resamples: int = AUC_RESAMPLES, seed: int = 0) -> tuple[float | None, float | None]:
    """(AUC(score) - AUC(reference_score), its bootstrap SE): both scored on the same resampled images;
    resamples with one class are left out."""
    y, a, b = labels.numpy().astype(np.int64), score.double().numpy(), reference_score.double().numpy()
    if len(set(y.tolist())) < 2:
        return None, None
    point = rank_auc(y[None], a[None]) - rank_auc(y[None], b[None])
    index = np.random.default_rng(seed).integers(0, len(y), (resamples, len(y)))
    draws = rank_auc(y[index], a[index]) - rank_auc(y[index], b[index])
    draws = draws[np.isfinite(draws)]
    return float(point[0]), float(np.std(draws, ddof=1)) if len(draws) > 1 else None


def paired_auc_bootstrap(labels: torch.Tensor | np.ndarray, scores: np.ndarray, reference_scores: np.ndarray,
                         resamples: int = AUC_RESAMPLES, seed: int = 0, level: float = 0.95) -> dict[str, float | None]:
    """The mean over trial seeds of AUC(scores[s]) - AUC(reference_scores[s]), with a paired bootstrap over images
    AND trial seeds: each resample draws n images and S seeds with replacement (images first, then seeds, from
    one generator), and both arms are scored on the same images and seeds. (S, n) score arrays, row s = seed s
    of each arm (the same trial seed for both). Returns point, se, low, high (the percentile interval at
    `level`) and the resamples kept (those with both classes). With S = 1 it is the image bootstrap of
    paired_auc_difference (the same image draws)."""
    y = np.asarray(labels).astype(np.int64)
    a, b = np.atleast_2d(np.asarray(scores, np.float64)), np.atleast_2d(np.asarray(reference_scores, np.float64))
    if a.shape != b.shape or a.shape[1] != len(y):
        raise ValueError(f"scores {a.shape} and reference {b.shape}: expected the same (seeds, {len(y)}) shape")
    empty = {"point": None, "se": None, "low": None, "high": None, "resamples": 0}
    if len(set(y.tolist())) < 2:
        return empty
    seeds, n = a.shape
    point = float(np.mean(rank_auc(np.broadcast_to(y, a.shape), a) - rank_auc(np.broadcast_to(y, b.shape), b)))
    rng = np.random.default_rng(seed)
    images = rng.integers(0, n, (resamples, n))
    chosen = rng.integers(0, seeds, (resamples, seeds))
    rows_a = a[chosen[:, :, None], images[:, None, :]].reshape(resamples * seeds, n)  # (R*S, n)
    rows_b = b[chosen[:, :, None], images[:, None, :]].reshape(resamples * seeds, n)
    positive = np.repeat(y[images], seeds, axis=0)
    draws = (rank_auc(positive, rows_a) - rank_auc(positive, rows_b)).reshape(resamples, seeds).mean(axis=1)
    draws = draws[np.isfinite(draws)]
    if len(draws) < 2:
        return empty | {"point": point}
    tail = 100 * (1 - level) / 2
    return {"point": point, "se": float(np.std(draws, ddof=1)), "low": float(np.percentile(draws, tail)),
            "high": float(np.percentile(draws, 100 - tail)), "resamples": int(len(draws))}


def comparison_row(name: str, result: DiffusionClassification, seconds: float, labels: torch.Tensor,
                   reference: tuple[torch.Tensor, torch.Tensor] | None) -> dict:
    """One line of the table. `reference`: the full vote's (predictions, positive vote shares) on the same
    images, for the paired columns; labels are the positive class when equal to the last class value."""
    classes = torch.tensor(result.classes)
    evals = float(result.network_evals.double().mean())
    correct = (result.predicted == labels).double()
    positive = (labels == classes[-1]).long()
    both = len(set(labels.tolist())) == 2 and len(result.classes) == 2
    auc = float(roc_auc_score(positive.numpy(), positive_share(result).numpy())) if both else None
    gap_auc = float(roc_auc_score(positive.numpy(), error_gap(result).numpy())) if both else None
    row = {"mode": name, "images": int(labels.numel()), "evals_per_image": evals,
           "fewer_than_paper": PAPER_NETWORK_EVALS / evals, "images_per_s": labels.numel() / seconds,
           "s_per_image": seconds / labels.numel(), "accuracy": float(correct.mean()), "auc": auc,
           "agrees_with_full_vote": None, "accuracy_minus_full_vote": None, "difference_se": None,
           "auc_minus_full_vote": None, "auc_difference_se": None, "error_gap_auc": gap_auc,
           "error_gap_auc_minus_full_vote": None, "error_gap_auc_difference_se": None}
    if reference is not None:  # paired: correct here minus correct in the full vote, image by image
        predicted, share = reference
        paired = correct - (predicted == labels).double()
        row.update(agrees_with_full_vote=float((result.predicted == predicted).double().mean()),
                   accuracy_minus_full_vote=float(paired.mean()),
                   difference_se=float(paired.std() / math.sqrt(paired.numel())) if paired.numel() > 1 else None)
        if both:
            diff, se = paired_auc_difference(positive, positive_share(result), share)
            row.update(auc_minus_full_vote=diff, auc_difference_se=se)
            # the error gap against the full vote's vote share: what switching the score would change
            diff, se = paired_auc_difference(positive, error_gap(result), share)
            row.update(error_gap_auc_minus_full_vote=diff, error_gap_auc_difference_se=se)
    return row


def goal_met(row: dict, full_row: dict) -> bool:
    """>= 20x fewer evaluations than the paper's 1002 at accuracy within 1 point of the full vote."""
    return row["fewer_than_paper"] >= GOAL_FACTOR and row["accuracy"] >= full_row["accuracy"] - GOAL_TOLERANCE


def compare_votes(model: Denoiser, data: LabelledLatents, base: DiffusionClassifierParams, *,
                  t_range: tuple[float, float], budget: int, risk: float, naive_images: int,
                  schedule: DiffusionSchedule | None = None,
                  log: Callable[[str], None] = lambda _: None) -> tuple[list[dict], dict[str, DiffusionClassification]]:
    """Rows (a)-(e') of the module docstring and the classifications behind them (keys "a" .. "e'").

    `base` sets the full budget (n_trials), batching and seed; `t_range` and `budget` must come from
    validation latents, never from `data`.
    """
    schedule = schedule or DiffusionSchedule()
    predictive = {"early_stop": "predictive", "early_stop_risk": risk}
    tuned = {"n_trials": budget, "t_range": t_range}
    variants = {"b": ({"early_stop": "off"}, False), "a": ({"early_stop": "off"}, True), "c": ({"early_stop": "exact"},
                False), "d": (predictive, False), "d'": ({**predictive, "stratified": False}, False),
                "e": ({**predictive, **tuned}, False), "e'": ({"early_stop": "exact", **tuned}, False)}
    k = min(naive_images, len(data.labels))
    results, seconds = {}, {}
    for key, (update, naive) in variants.items():
        results[key], seconds[key] = vote(model, data.head(k) if naive else data, base.model_copy(update=update),
                                          schedule, naive=naive)
        log(f"({key}) done in {seconds[key]:.1f} s")
    full, n = results["b"], base.n_trials
    low, high = t_range
    names = {"a": f"(a) naive loop, N={n} (first {k} images)", "b": f"(b) batched full vote, N={n}",
             "c": f"(c) batched, exact early stop, N={n}",
             "d": f"(d) batched, predictive early stop (risk {risk}), N={n}",
             "d'": "(d') as (d) with i.i.d. t instead of stratified t",
             "e": f"(e) batched, predictive early stop (risk {risk}), N={budget}, t in [{low:.2f}, {high:.2f})",
             "e'": f"(e') batched, exact early stop, N={budget}, t in [{low:.2f}, {high:.2f})"}
    rows, share = [], positive_share(full)
    for key in ("a", "b", "c", "d", "d'", "e", "e'"):
        labels = data.labels[:k] if key == "a" else data.labels
        reference = None if key == "b" else (
            (full.predicted[:k], share[:k]) if key == "a" else (full.predicted, share))
        rows.append(comparison_row(names[key], results[key], seconds[key], labels, reference))
    for row in rows:
        row["goal_met"] = goal_met(row, rows[1])
    return rows, results


def markdown_table(rows: list[dict]) -> list[str]:
    """The rows as a Markdown table (docs/benchmarks.md layout)."""
    lines = ["| mode | network evals / image | fewer than 1002 | images/s | accuracy | vs (b), paired ± SE "
             "| agrees with (b) | AUC | AUC vs (b), paired ± SE | AUC error gap | vs (b)'s vote share, paired ± SE |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        agree = "—" if r["agrees_with_full_vote"] is None else f"{r['agrees_with_full_vote']:.3f}"
        diff = "—" if r["accuracy_minus_full_vote"] is None else (
            f"{100 * r['accuracy_minus_full_vote']:+.1f} ± {100 * (r['difference_se'] or 0.0):.1f} pt")
        auc = "—" if r["auc"] is None else f"{r['auc']:.3f}"
        auc_diff = "—" if r["auc_minus_full_vote"] is None else (
            f"{r['auc_minus_full_vote']:+.3f} ± {r['auc_difference_se'] or 0.0:.3f}")
        gap = "—" if r.get("error_gap_auc") is None else f"{r['error_gap_auc']:.3f}"
        gap_diff = "—" if r.get("error_gap_auc_minus_full_vote") is None else (
            f"{r['error_gap_auc_minus_full_vote']:+.3f} ± {r['error_gap_auc_difference_se'] or 0.0:.3f}")
        lines.append(f"| {r['mode']} | {r['evals_per_image']:.1f} | {r['fewer_than_paper']:.1f}× | "
                     f"{r['images_per_s']:.1f} | {r['accuracy']:.3f} | {diff} | {agree} | {auc} | {auc_diff} | "
                     f"{gap} | {gap_diff} |")
    return lines
