"""The experiment: did synthetic data make the classifier fairer, beyond what oversampling does?

Arms (pipelines/downstream_classifiers): `baseline` (real only), `oversampled` (real only, the plan's cells
oversampled), `augmented` (real + synthetic), each trained with several seeds and named `<arm>_s<seed>`
(or `<arm>` with one seed). Per test set and skin-tone group, an arm's sensitivity (at each seed's own
validation threshold) and AUC are averaged over its seeds.

Confidence intervals: a paired bootstrap over images *and* seeds. Each resample draws the group's malignant
and benign images with replacement (stratified by label, so counts stay fixed) and the seed indices with
replacement; both arms of a difference see the same images and the same seed indices (seed s is the same
initialisation, data order and augmentation draw in every arm), so the CI is of the paired difference. The
planted gap (sensitivity FST I-II minus FST V-VI) resamples each group's images independently (they are
disjoint) and shares the seed indices between the groups (seed s is one classifier scoring both groups).

AUC under a resample of positives (counts w_p) and negatives (counts w_n) is w_p^T M w_n / (n_p n_n) with
M[i, j] = 1[s_i > s_j] + 1/2 1[s_i = s_j] (Mann-Whitney), so every resample is two matrix products.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

ARMS = ("baseline", "oversampled", "augmented")
_NAME = re.compile(r"^(?P<arm>baseline|oversampled|augmented)(?:_s(?P<seed>\d+))?$")
GROUPS = ("all", "A", "B", "C")
DIFFERENCES = (("augmented", "baseline"), ("augmented", "oversampled"), ("oversampled", "baseline"))


def arm_members(classifiers: list[str]) -> dict[str, list[str]]:
    """arm -> its classifiers (one per seed), sorted by seed; arms without a classifier are left out."""
    members: dict[str, list[tuple[int, str]]] = {}
    for name in classifiers:
        match = _NAME.match(name)
        if match:
            members.setdefault(match["arm"], []).append((int(match["seed"] or 0), name))
    return {arm: [n for _, n in sorted(members[arm])] for arm in ARMS if arm in members}


@dataclass(frozen=True)
class GroupData:
    """One test set x group: per arm a (seeds, images) score matrix and per-seed thresholds, images aligned."""

    labels: np.ndarray
    scores: dict[str, np.ndarray]  # arm -> (n_seeds, n_images)
    thresholds: dict[str, np.ndarray]  # arm -> (n_seeds,)


def group_data(table: pd.DataFrame, test_set: str, group: str, arms: dict[str, list[str]],
               thresholds: dict[str, float]) -> GroupData | None:
    rows = table[table["test_set"] == test_set]
    if group != "all":
        rows = rows[rows["skin_tone_group"] == group]
    if rows.empty:
        return None
    wide = rows.pivot_table(index="image_id", columns="classifier", values="score", aggfunc="first")
    labels = rows.drop_duplicates("image_id").set_index("image_id")["label"].reindex(wide.index).to_numpy()
    scores, cut = {}, {}
    for arm, names in arms.items():
        if not set(names) <= set(wide.columns):
            return None
        scores[arm] = wide[names].to_numpy().T
        cut[arm] = np.array([thresholds[n] for n in names])
    return GroupData(labels.astype(int), scores, cut)


def _resample_counts(rng: np.random.Generator, n: int, draws: int) -> np.ndarray:
    return rng.multinomial(n, np.full(n, 1.0 / n), size=draws).astype(np.float64) if n else np.zeros((draws, 0))


def per_seed_resamples(data: GroupData, arm: str, w_pos: np.ndarray, w_neg: np.ndarray) -> dict[str, np.ndarray]:
    """{"sensitivity", "auc"}: (draws, n_seeds) values of each seed's classifier under each image resample."""
    positive, negative = data.labels == 1, data.labels == 0
    n_pos, n_neg = int(positive.sum()), int(negative.sum())
    sens, auc = [], []
    for seed_scores, threshold in zip(data.scores[arm], data.thresholds[arm], strict=True):
        hits = (seed_scores[positive] >= threshold).astype(np.float64)
        sens.append(w_pos @ hits / n_pos if n_pos else np.full(len(w_pos), np.nan))
        if n_pos and n_neg:
            s_p, s_n = seed_scores[positive][:, None], seed_scores[negative][None, :]
            m = (s_p > s_n) + 0.5 * (s_p == s_n)
            auc.append(((w_pos @ m) * w_neg).sum(axis=1) / (n_pos * n_neg))
        else:
            auc.append(np.full(len(w_pos), np.nan))
    return {"sensitivity": np.stack(sens, axis=1), "auc": np.stack(auc, axis=1)}


def seed_mean(values: np.ndarray, seed_draws: np.ndarray) -> np.ndarray:
    """(draws,) mean over each draw's resampled seed indices of (draws, n_seeds) values."""
    return np.take_along_axis(values, seed_draws, axis=1).mean(axis=1)


def _interval(samples: np.ndarray, confidence: float) -> list[float | None]:
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return [None, None]
    tail = 100 * (1 - confidence) / 2
    return [float(np.percentile(finite, tail)), float(np.percentile(finite, 100 - tail))]


def run_experiment(table: pd.DataFrame, thresholds: dict[str, float], test_sets: list[str], draws: int,
                   confidence: float, seed: int) -> dict:
    """Arm values and paired-bootstrap CIs per test set and skin-tone group; {} when fewer than two arms exist."""
    arms = arm_members(list(dict.fromkeys(table["classifier"])))
    if len(arms) < 2:
        return {}
    n_seeds = min(len(v) for v in arms.values())
    arms = {a: v[:n_seeds] for a, v in arms.items()}
    rng = np.random.default_rng(seed)
    out: dict = {"arms": arms, "seeds": n_seeds, "bootstrap_samples": draws, "confidence": confidence,
                 "test_sets": {}}
    for test_set in test_sets:
        per_group, resampled = {}, {}
        # One seed resample per draw, shared by every group and arm of the test set: seed s is the same classifier
        # in every group (and the same initialisation and data order in every arm), so differences between
        # groups and between arms are paired on seeds; images are resampled per group (disjoint images).
        seed_draws = rng.integers(0, n_seeds, size=(draws, n_seeds))
        for group in GROUPS:
            data = group_data(table, test_set, group, arms, thresholds)
            if data is None:
                continue
            n_pos, n_neg = int((data.labels == 1).sum()), int((data.labels == 0).sum())
            w_pos, w_neg = _resample_counts(rng, n_pos, draws), _resample_counts(rng, n_neg, draws)
            entry = {"n": len(data.labels), "positives": n_pos, "arms": {}, "differences": {}}
            boot = {}
            for arm in arms:
                point = per_seed_resamples(data, arm, np.ones((1, n_pos)), np.ones((1, n_neg)))
                values = per_seed_resamples(data, arm, w_pos, w_neg)
                boot[arm] = {m: seed_mean(v, seed_draws) for m, v in values.items()}
                entry["arms"][arm] = {m: {"value": float(np.nanmean(point[m])),
                                          "per_seed": [float(x) for x in point[m][0]],
                                          "ci": _interval(boot[arm][m], confidence)} for m in point}
            for first, second in DIFFERENCES:
                if first in arms and second in arms:
                    entry["differences"][f"{first}-{second}"] = {
                        m: {"value": entry["arms"][first][m]["value"] - entry["arms"][second][m]["value"],
                            "ci": _interval(boot[first][m] - boot[second][m], confidence)}
                        for m in ("sensitivity", "auc")}
            per_group[group], resampled[group] = entry, boot
        if {"A", "C"} <= set(per_group):  # the planted gap: FST I-II minus V-VI, images resampled per group
            for arm in arms:
                gap = resampled["A"][arm]["sensitivity"] - resampled["C"][arm]["sensitivity"]
                point = (per_group["A"]["arms"][arm]["sensitivity"]["value"]
                         - per_group["C"]["arms"][arm]["sensitivity"]["value"])
                per_group.setdefault("gap_A_minus_C", {})[arm] = {"sensitivity": {"value": point,
                                                                                   "ci": _interval(gap, confidence)}}
        if per_group:
            out["test_sets"][test_set] = per_group
    out["headline"] = headline(out)
    return out


def _fmt(entry: dict) -> str:
    low, high = entry["ci"]
    interval = f"[{low:+.2f}, {high:+.2f}]" if low is not None else "[n/a]"
    return f"{entry['value']:+.2f} {interval}"


def _excludes_zero(entry: dict) -> int:
    """+1 when the CI lies above 0, -1 below, 0 when it contains 0 (or is missing)."""
    low, high = entry["ci"]
    if low is None:
        return 0
    return 1 if low > 0 else -1 if high < 0 else 0


def headline(result: dict, test_set: str | None = None) -> str:
    """One sentence: did augmentation raise FST V-VI sensitivity, and beyond oversampling?"""
    sets = result.get("test_sets", {})
    test_set = test_set or next((t for t in ("ddi", "isic_test") if t in sets and "C" in sets[t]), None)
    if test_set is None:
        return "No test set with FST V-VI images and several arms: the experiment could not be scored."
    c = sets[test_set]["C"]["differences"]
    gap = sets[test_set].get("gap_A_minus_C", {}).get("baseline")
    parts = [f"On {test_set} FST V-VI ({sets[test_set]['C']['positives']} malignant), "
             f"{result['seeds']} seeds, {int(result['confidence'] * 100)} % paired bootstrap CIs:"]
    if gap:
        sign = _excludes_zero(gap["sensitivity"])
        meaning = {1: " (a real gap)", 0: " (not distinguishable from 0)",
                   -1: " (reversed: V-VI sensitivity is higher)"}[sign]
        parts.append(f"the baseline's sensitivity gap (I-II minus V-VI) is {_fmt(gap['sensitivity'])}{meaning};")
    vs_base, vs_over = c.get("augmented-baseline"), c.get("augmented-oversampled")
    if vs_base and vs_over:
        parts.append(f"augmentation changed V-VI sensitivity by {_fmt(vs_base['sensitivity'])} against the baseline "
                     f"and {_fmt(vs_over['sensitivity'])} against oversampling,")
        verdict = _excludes_zero(vs_over["sensitivity"])
        parts.append("so synthetic data closed part of the gap beyond what oversampling does." if verdict > 0 else
                     "so synthetic data did worse than oversampling there." if verdict < 0 else
                     "so this run cannot tell augmentation from oversampling (the CI contains 0).")
    return " ".join(parts)


def arm_metrics(metrics: dict, arms: dict[str, list[str]]) -> dict:
    """metrics.json entries for each arm: the mean over its seeds of every numeric metric (gaps included), so the
    fairness check can name an arm (`augmented`) whatever the number of seeds."""
    out: dict = {}
    for arm, names in arms.items():
        if len(names) < 2 or arm in metrics:
            continue
        for test_set in metrics[names[0]]:
            keys = metrics[names[0]][test_set]
            values = {k: [metrics[n].get(test_set, {}).get(k) for n in names] for k in keys}
            out.setdefault(arm, {})[test_set] = {
                k: (float(np.mean(v)) if all(isinstance(x, int | float) for x in v) else None)
                for k, v in values.items()} | {"seeds": len(names)}
    return out


def experiment_table(result: dict, test_set: str) -> pd.DataFrame:
    """Rows = skin-tone groups; columns = sensitivity and AUC per arm and the paired differences, with CIs."""
    rows = []
    for group, entry in result["test_sets"].get(test_set, {}).items():
        if group == "gap_A_minus_C":
            continue
        row = {"group": group, "n": entry["n"], "malignant": entry["positives"]}
        for metric in ("sensitivity", "auc"):
            for arm, values in entry["arms"].items():
                low, high = values[metric]["ci"]
                row[f"{metric} {arm}"] = (f"{values[metric]['value']:.2f} [{low:.2f}, {high:.2f}]"
                                          if low is not None else "n/a")
            for name, diff in entry["differences"].items():
                row[f"{metric} {name}"] = _fmt(diff[metric])
        rows.append(row)
    return pd.DataFrame(rows)
