"""Report numbers of the diffusion classifier: the paper's Fig. 2 ablation, Fig. 3 and Fig. 9, and the
two choices that make it cheap, tuned on a validation split: the informative t range and the trial budget.

Accuracy/F1 vs N comes from ONE run with all n_trials computed (early_stop="off"): the first N trials of
each image are a prefix of its trial list, and with the bit-reversed stratified t (trials.py) a prefix of
2^j trials holds one t per each of 2^j equal strata, so every prefix is itself a stratified draw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.metrics import f1_score, roc_auc_score

from training.diffusion_classifier.votes import lowest_mean_error, majority, tally, trial_votes


def prefix_predictions(errors: torch.Tensor, n_trials: int, mode: str) -> torch.Tensor:
    """(n, K, N) errors -> (n,) class index decided by the first n_trials trials."""
    prefix = errors[:, :, :n_trials]
    if n_trials > errors.shape[2] or torch.isnan(prefix).any():
        raise ValueError(f"errors hold fewer than {n_trials} computed trials per image: run the classifier "
                         f"with early_stop='off' and n_trials >= {n_trials}")
    if mode == "majority":
        return majority(tally(prefix))
    if mode == "average":
        return lowest_mean_error(prefix.mean(dim=2))
    raise ValueError(f"mode {mode!r}: expected 'majority' or 'average'")


def _f1(labels: np.ndarray, predicted: np.ndarray, classes: Sequence[int]) -> float:
    if len(classes) == 2:  # positive = the last class (malignant = 1)
        return float(f1_score(labels, predicted, labels=list(classes), pos_label=classes[-1], zero_division=0.0))
    return float(f1_score(labels, predicted, labels=list(classes), average="macro", zero_division=0.0))


def accuracy_vs_trials(errors: torch.Tensor, labels: torch.Tensor, classes: Sequence[int],
                       trial_counts: Sequence[int]) -> list[dict[str, float]]:
    """Paper Fig. 2: accuracy and F1 of majority vote and of averaging, for each N in trial_counts."""
    class_values = torch.tensor(list(classes))
    truth = labels.long().numpy()
    rows = []
    for n in trial_counts:
        row: dict[str, float] = {"n_trials": int(n)}
        for mode in ("majority", "average"):
            predicted = class_values[prefix_predictions(errors, int(n), mode)].numpy()
            row[f"{mode}_accuracy"] = float((predicted == truth).mean())
            row[f"{mode}_f1"] = _f1(truth, predicted, classes)
        rows.append(row)
    return rows


def retention_curve(correct: torch.Tensor, uncertainty: torch.Tensor,
                    removed_fractions: Sequence[float] = tuple(i / 20 for i in range(21)),
                    labels: torch.Tensor | None = None) -> list[dict[str, float]]:
    """Paper Fig. 3: accuracy on the retained images as the most uncertain fraction is removed.

    floor(f * n) images are removed, most uncertain first; equal uncertainties are removed in index
    order (stable sort), so the curve is deterministic. Accuracy is NaN when nothing is retained. With
    `labels`, also the balanced accuracy (mean over the classes retained of their accuracy): on imbalanced data
    removing the rarer class's uncertain images raises the plain accuracy by itself.
    """
    n = correct.numel()
    order = torch.sort(uncertainty.double(), descending=True, stable=True).indices
    correct_sorted = correct.bool()[order]
    labels_sorted = None if labels is None else labels[order]
    rows = []
    for fraction in removed_fractions:
        removed = math.floor(float(fraction) * n + 1e-9)
        kept = correct_sorted[removed:]
        accuracy = float(kept.double().mean()) if kept.numel() else float("nan")
        row = {"removed_fraction": float(fraction), "retained": int(kept.numel()), "accuracy": accuracy}
        if labels_sorted is not None:
            kept_labels = labels_sorted[removed:]
            per_class = [float(kept[kept_labels == c].double().mean()) for c in torch.unique(kept_labels)]
            row["balanced_accuracy"] = float(np.mean(per_class)) if per_class else float("nan")
        rows.append(row)
    return rows


def confidence_by_outcome(predicted: torch.Tensor, labels: torch.Tensor, confidence: torch.Tensor,
                          positive: int = 1) -> dict[str, np.ndarray]:
    """Paper Fig. 9: the confidence (vote share) of true/false positives/negatives."""
    predicted_positive, actual_positive = predicted == positive, labels == positive
    groups = {"TP": predicted_positive & actual_positive, "TN": ~predicted_positive & ~actual_positive,
              "FP": predicted_positive & ~actual_positive, "FN": ~predicted_positive & actual_positive}
    return {name: confidence[mask].double().numpy() for name, mask in groups.items()}


def _class_index(labels: torch.Tensor, classes: Sequence[int]) -> torch.Tensor:
    lookup = {int(v): i for i, v in enumerate(classes)}
    return torch.tensor([lookup[int(v)] for v in labels.tolist()], dtype=torch.long)


def vote_accuracy_by_t(errors: torch.Tensor, timesteps: torch.Tensor, labels: torch.Tensor, classes: Sequence[int],
                       bins: int = 10, num_timesteps: int = 1000) -> list[dict[str, float]]:
    """Fraction of single computed trials that vote the true class, per equal t bin: where the signal is."""
    correct = (trial_votes(errors.transpose(1, 2)) == _class_index(labels, classes)[:, None]).double()
    computed = ~torch.isnan(errors).any(dim=1)
    edges = [round(i * num_timesteps / bins) for i in range(bins + 1)]
    rows = []
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = computed & (timesteps >= low) & (timesteps < high)
        rows.append({"t_from": low, "t_to": high, "trials": int(inside.sum()),
                     "trial_accuracy": float(correct[inside].mean()) if inside.any() else float("nan")})
    return rows


def informative_t_range(by_t: Sequence[dict[str, float]], tolerance: float = 0.05,
                        num_timesteps: int = 1000) -> tuple[float, float]:
    """t_range (fractions of T) spanning the bins whose trial accuracy is within `tolerance` of the best."""
    scored = [b for b in by_t if not math.isnan(b["trial_accuracy"])]
    best = max(b["trial_accuracy"] for b in scored)
    good = [b for b in scored if b["trial_accuracy"] >= best - tolerance]
    return min(b["t_from"] for b in good) / num_timesteps, max(b["t_to"] for b in good) / num_timesteps


def sufficient_trials(ablation: Sequence[dict[str, float]], tolerance: float = 0.005, mode: str = "majority") -> int:
    """The smallest N of an accuracy-vs-N table whose accuracy is within `tolerance` of its largest N's."""
    target = ablation[-1][f"{mode}_accuracy"] - tolerance
    return int(next(a["n_trials"] for a in ablation if a[f"{mode}_accuracy"] >= target))


def ranking_scores(errors: torch.Tensor, timesteps: torch.Tensor, n_trials: int,
                   t_window: tuple[float, float] | None = None, num_timesteps: int = 1000) -> dict[str, torch.Tensor]:
    """Two scores of the last class (malignant) from each image's first `n_trials` computed trials inside
    `t_window` (fractions of T; None = all), for two classes:

    vote_share: the fraction of those trials the last class wins (strictly lower error; a tie is the first
    class's, as `trial_votes`); error_gap: the mean of err_first - err_last over them (the decision
    counterpart is the paper's "average" mode, Li et al.). Both grow with the evidence for the last class.
    """
    if errors.shape[1] != 2:
        raise ValueError(f"errors have {errors.shape[1]} classes: ranking scores are for two classes")
    inside = ~torch.isnan(errors).any(dim=1)
    if t_window is not None:
        low, high = round(t_window[0] * num_timesteps), round(t_window[1] * num_timesteps)
        inside &= (timesteps >= low) & (timesteps < high)
    used = inside & (inside.long().cumsum(dim=1) <= n_trials)  # the first n_trials of each image, in trial order
    count = used.sum(dim=1)
    if (count == 0).any():
        raise ValueError(f"{int((count == 0).sum())} image(s) have no computed trial in t window {t_window}")
    filled = torch.where(used[:, None, :], errors.double(), torch.zeros((), dtype=torch.float64))
    first, last = filled[:, 0], filled[:, 1]
    wins = ((last < first) & used).sum(dim=1)
    return {"vote_share": (wins / count).float(), "error_gap": ((first - last).sum(dim=1) / count).float(),
            "trials": count}


def ranking_auc(labels: torch.Tensor, classes: Sequence[int], score: torch.Tensor) -> float:
    """ROC AUC of `score` with the last class positive; NaN when the labels hold one class."""
    positive = (labels.long() == int(classes[-1])).numpy()
    if positive.all() or not positive.any():
        return float("nan")
    return float(roc_auc_score(positive, score.double().numpy()))


def auc_vs_trials(errors: torch.Tensor, timesteps: torch.Tensor, labels: torch.Tensor, classes: Sequence[int],
                  trial_counts: Sequence[int], t_window: tuple[float, float] | None = None,
                  num_timesteps: int = 1000) -> list[dict[str, float]]:
    """ROC AUC (last class positive) of the vote share and of the error gap vs N: the first N computed trials
    inside `t_window` (prefixes of one full run, as accuracy_vs_trials); mean_trials < N where the window holds
    fewer."""
    rows = []
    for n in trial_counts:
        scores = ranking_scores(errors, timesteps, int(n), t_window, num_timesteps)
        rows.append({"n_trials": int(n), "mean_trials": float(scores["trials"].double().mean()),
                     "vote_share_auc": ranking_auc(labels, classes, scores["vote_share"]),
                     "error_gap_auc": ranking_auc(labels, classes, scores["error_gap"])})
    return rows


def auc_by_t(errors: torch.Tensor, timesteps: torch.Tensor, labels: torch.Tensor, classes: Sequence[int],
             bins: int = 10, num_timesteps: int = 1000,
             t_range: tuple[float, float] = (0.0, 1.0)) -> list[dict[str, float]]:
    """Per equal t bin of `t_range`: the AUC of the vote share and of the error gap from that bin's trials alone.
    A bin where some image has no computed trial gets NaN (it cannot rank every image)."""
    rows = []
    low, high = t_range
    computed = ~torch.isnan(errors).any(dim=1)
    for i in range(bins):
        window = (low + i * (high - low) / bins, low + (i + 1) * (high - low) / bins)
        t_from, t_to = round(window[0] * num_timesteps), round(window[1] * num_timesteps)
        inside = computed & (timesteps >= t_from) & (timesteps < t_to)
        row = {"t_from": t_from, "t_to": t_to, "mean_trials": float(inside.sum(dim=1).double().mean())}
        if (inside.sum(dim=1) == 0).any():
            rows.append(row | {"vote_share_auc": float("nan"), "error_gap_auc": float("nan")})
            continue
        scores = ranking_scores(errors, timesteps, errors.shape[2], window, num_timesteps)
        rows.append(row | {"vote_share_auc": ranking_auc(labels, classes, scores["vote_share"]),
                           "error_gap_auc": ranking_auc(labels, classes, scores["error_gap"])})
    return rows


# --- tuning for the ranking (issue 15): the t window and the smallest N, from several trial seeds -------------

def ranking_trial_counts(n_max: int) -> list[int]:
    """1, 2, 3, 4, 6, 8, 12, 16, 24, ... (2^j and 3 * 2^j) below n_max, and n_max: the N searched for the ranking
    (24 trials = 48 network evaluations sits between 16 and 32)."""
    counts = {c for j in range(n_max.bit_length()) for c in (2**j, 3 * 2**j) if c < n_max}
    return sorted(counts | {n_max})


def trials_in_window(timesteps: torch.Tensor, errors: torch.Tensor, t_window: tuple[float, float],
                     num_timesteps: int = 1000) -> int:
    """The fewest computed trials any image has inside `t_window`: the largest N a prefix table can use there."""
    low, high = round(t_window[0] * num_timesteps), round(t_window[1] * num_timesteps)
    inside = ~torch.isnan(errors).any(dim=1) & (timesteps >= low) & (timesteps < high)
    return int(inside.sum(dim=1).min()) if inside.shape[0] else 0


def seed_summary(tables: Sequence[Sequence[dict[str, float]]], keys: Sequence[str]) -> list[dict[str, float]]:
    """Tables of the same rows from several trial seeds -> one table: the first seed's other columns, and for each
    key its mean over seeds, `<key>_sd` (sample SD over seeds; 0 for one seed) and `<key>_by_seed`."""
    rows = []
    for same_row in zip(*tables, strict=True):
        row = {k: v for k, v in same_row[0].items() if k not in keys}
        for key in keys:
            values = np.array([r[key] for r in same_row], dtype=np.float64)
            row[key] = float(values.mean())
            row[f"{key}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            row[f"{key}_by_seed"] = values.tolist()
        rows.append(row)
    return rows


def ranking_t_window(by_t: Sequence[dict[str, float]], key: str, tolerance: float,
                     num_timesteps: int = 1000) -> tuple[float, float]:
    """The t window (fractions of T) of the best bin by `key` (its AUC; the first of equals) grown over its
    neighbours while their AUC is within `tolerance` of the best: one interval, as t_range must be. A NaN bin
    ends the window."""
    values = [b[key] for b in by_t]
    finite = [i for i, v in enumerate(values) if not math.isnan(v)]
    if not finite:
        raise ValueError(f"no t bin has a finite {key}: expected both classes among the labels")
    best = max(finite, key=lambda i: (values[i], -i))
    floor = values[best] - tolerance

    def good(i: int) -> bool:
        return 0 <= i < len(values) and not math.isnan(values[i]) and values[i] >= floor

    low, high = best, best
    while good(low - 1):
        low -= 1
    while good(high + 1):
        high += 1
    return by_t[low]["t_from"] / num_timesteps, by_t[high]["t_to"] / num_timesteps


def smallest_sufficient_n(curve: Sequence[dict[str, float]], key: str, reference: float,
                          tolerance: float) -> int | None:
    """The smallest n_trials of an AUC-vs-N table whose `key` is >= reference - tolerance; None if none is."""
    return next((int(row["n_trials"]) for row in curve if row[key] >= reference - tolerance), None)
