"""The fairness experiment: arms over seeds, paired bootstrap CIs, the headline, and the oversampled arm."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from pipelines.downstream_classifiers.oversampling import oversampled_items
from pipelines.fairness.check import fairness_check
from pipelines.fairness.experiment import (
    GroupData,
    arm_members,
    arm_metrics,
    headline,
    per_seed_resamples,
    run_experiment,
)
from pipelines.fairness.params import FairnessCheckParams, FairnessParams
from training.downstream.dataset import ImageItem


def predictions(scores_by_classifier: dict[str, np.ndarray], labels: np.ndarray, groups: np.ndarray) -> pd.DataFrame:
    ids = [f"img{i:03d}" for i in range(len(labels))]
    frames = [pd.DataFrame({"classifier": name, "test_set": "ddi", "image_id": ids, "label": labels, "score": scores,
                            "skin_tone_group": groups})
              for name, scores in scores_by_classifier.items()]
    return pd.concat(frames, ignore_index=True)


def test_arm_names_with_and_without_seeds():
    assert arm_members(["augmented_s2", "baseline_s0", "augmented_s0", "class_n_diff", "baseline_s2"]) == {
        "baseline": ["baseline_s0", "baseline_s2"], "augmented": ["augmented_s0", "augmented_s2"]}
    assert arm_members(["baseline", "augmented"]) == {"baseline": ["baseline"], "augmented": ["augmented"]}


def test_resampled_auc_equals_sklearn_on_the_resampled_images():
    rng = np.random.default_rng(0)
    labels = np.array([1] * 7 + [0] * 11)
    scores = np.round(rng.uniform(size=(2, 18)), 1)  # rounding makes ties, scored 1/2 as by sklearn
    data = GroupData(labels, {"arm": scores}, {"arm": np.array([0.5, 0.3])})
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    draws_pos, draws_neg = rng.integers(0, 7, (5, 7)), rng.integers(0, 11, (5, 11))
    w_pos = np.stack([np.bincount(d, minlength=7) for d in draws_pos]).astype(float)
    w_neg = np.stack([np.bincount(d, minlength=11) for d in draws_neg]).astype(float)
    values = per_seed_resamples(data, "arm", w_pos, w_neg)
    for b in range(5):
        chosen = np.concatenate([pos[draws_pos[b]], neg[draws_neg[b]]])
        for s, threshold in enumerate((0.5, 0.3)):
            assert values["auc"][b, s] == pytest.approx(roc_auc_score(labels[chosen], scores[s, chosen]))
            assert values["sensitivity"][b, s] == pytest.approx((scores[s, pos[draws_pos[b]]] >= threshold).mean())


def test_identical_arms_differ_by_zero_and_a_better_arm_is_found():
    rng = np.random.default_rng(1)
    n = 240
    labels = (np.arange(n) % 3 == 0).astype(int)
    groups = np.array(["A", "B", "C"])[np.arange(n) // 80]
    noisy = {f"baseline_s{s}": np.clip(labels * 0.3 + rng.uniform(0, 0.7, n), 0, 1) for s in range(3)}
    same = {f"oversampled_s{s}": noisy[f"baseline_s{s}"] for s in range(3)}
    # augmented: near-perfect on FST V-VI, like the baseline elsewhere
    better = {f"augmented_s{s}": np.where(groups == "C", 0.05 + 0.9 * labels, noisy[f"baseline_s{s}"])
              for s in range(3)}
    table = predictions(noisy | same | better, labels, groups)
    thresholds = dict.fromkeys(table["classifier"].unique(), 0.5)
    result = run_experiment(table, thresholds, ["ddi"], draws=300, confidence=0.95, seed=0)
    c = result["test_sets"]["ddi"]["C"]
    assert result["seeds"] == 3 and c["positives"] == 26
    assert c["differences"]["oversampled-baseline"]["sensitivity"] == {"value": 0.0, "ci": [0.0, 0.0]}
    low, high = c["differences"]["augmented-oversampled"]["sensitivity"]["ci"]
    assert 0 < low <= c["differences"]["augmented-oversampled"]["sensitivity"]["value"] <= high
    a = result["test_sets"]["ddi"]["A"]["differences"]["augmented-baseline"]["sensitivity"]
    assert a == {"value": 0.0, "ci": [0.0, 0.0]}
    assert "closed part of the gap beyond what oversampling does" in result["headline"]
    expected = np.mean([(better[f"augmented_s{s}"][(groups == "C") & (labels == 1)] >= 0.5).mean() for s in range(3)])
    assert c["arms"]["augmented"]["sensitivity"]["value"] == pytest.approx(expected)



def test_the_planted_gap_is_paired_on_seeds():
    # Each seed's threshold shifts both groups alike: the seed-level spread is common to A and C, and the gap
    # within every seed is 0.2. Sharing the seed draws between the groups cancels that spread, so the gap's CI is
    # as wide as with no seed spread at all (images alone); drawing seeds per group (the old code) doubled it.
    n_pos = 40
    labels = np.array([1] * n_pos + [0] * 40 + [1] * n_pos + [0] * 40)
    groups = np.array(["A"] * 80 + ["C"] * 80)
    ranks = np.concatenate([np.arange(n_pos), np.zeros(40), np.arange(n_pos) - 8, np.zeros(40)]) / n_pos
    scores = {f"{arm}_s{s}": np.clip(ranks, 0, 1) for arm in ("baseline", "oversampled") for s in range(3)}
    table = predictions(scores, labels, groups)

    def gap(seed_thresholds: tuple[float, ...]) -> dict:
        thresholds = {f"{arm}_s{s}": t for arm in ("baseline", "oversampled") for s, t in enumerate(seed_thresholds)}
        result = run_experiment(table, thresholds, ["ddi"], draws=1000, confidence=0.95, seed=0)
        per_seed = {g: result["test_sets"]["ddi"][g]["arms"]["baseline"]["sensitivity"]["per_seed"] for g in "AC"}
        return per_seed, result["test_sets"]["ddi"]["gap_A_minus_C"]["baseline"]["sensitivity"]

    per_seed, shifted = gap((0.8, 0.5, 0.1))
    assert per_seed == {"A": [0.2, 0.5, 0.9], "C": [0.0, 0.3, 0.7]}
    _, images_only = gap((0.5, 0.5, 0.5))
    assert shifted["value"] == pytest.approx(0.2) and images_only["value"] == pytest.approx(0.2)
    width = {name: g["ci"][1] - g["ci"][0] for name, g in (("shifted", shifted), ("images_only", images_only))}
    assert shifted["ci"][0] > 0 and width["shifted"] < 1.3 * width["images_only"], (shifted, images_only)


def test_headline_says_when_the_ci_contains_zero():
    result = {"seeds": 3, "confidence": 0.95, "test_sets": {"ddi": {"C": {"positives": 48, "differences": {
        "augmented-baseline": {"sensitivity": {"value": 0.05, "ci": [-0.02, 0.12]}},
        "augmented-oversampled": {"sensitivity": {"value": 0.01, "ci": [-0.06, 0.08]}}}},
        "gap_A_minus_C": {"baseline": {"sensitivity": {"value": 0.3, "ci": [0.15, 0.45]}}}}}}
    text = headline(result)
    assert "cannot tell augmentation from oversampling" in text and "(a real gap)" in text


def test_arm_metrics_are_seed_means_and_the_check_reads_them():
    metrics = {f"augmented_s{s}": {"ddi": {"auc": 0.7 + 0.1 * s, "sensitivity_gap_skin_tone": 0.1 * s}}
               for s in range(3)} | {"baseline": {"ddi": {"auc": 0.9}}}
    arms = arm_members(list(metrics))
    merged = metrics | arm_metrics(metrics, arms)
    assert merged["augmented"]["ddi"]["auc"] == pytest.approx(0.8)
    assert merged["augmented"]["ddi"]["sensitivity_gap_skin_tone"] == pytest.approx(0.1)
    loose = FairnessParams(check=FairnessCheckParams(max_sensitivity_gap=0.2, max_auc_drop=0.15))
    assert fairness_check(merged, loose)[0]
    strict = FairnessParams(check=FairnessCheckParams(max_sensitivity_gap=0.2, max_auc_drop=0.05))
    passed, details = fairness_check(merged, strict)
    assert not passed and "below baseline's" in details["failures"][0]


def test_oversampled_copies_fill_the_plan_cells():
    meta = pd.DataFrame({"label": [0, 0, 1, 1, 0], "skin_tone_group": ["A", "C", "C", "A", "C"]})
    items = [ImageItem(key=f"k{i}", source=None, label=int(label), content=f"sha{i}")
             for i, label in enumerate(meta["label"])]
    plan = pd.DataFrame({"label": [0, 0, 1, 1], "skin_tone_group": ["A", "C", "A", "C"], "to_generate": [0, 5, 0, 3]})
    extra = oversampled_items(items, meta, plan, seed=0)
    assert len(extra) == 8 and len({e.key for e in extra}) == 8
    assert sorted(e.key.split("#")[0] for e in extra if e.label == 1) == ["k2"] * 3
    assert {e.key.split("#")[0] for e in extra if e.label == 0} <= {"k1", "k4"}
    assert oversampled_items(items, meta, plan, seed=0) == extra  # seeded
