"""Fairness metrics against scikit-learn and fairlearn; bootstrap; threshold rule; predictions schema."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equal_opportunity_difference,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_negative_rate,
)
from sklearn.metrics import accuracy_score, balanced_accuracy_score, recall_score, roc_auc_score

from pipelines.fairness.bootstrap import bootstrap_metrics, group_rng, percentile_interval
from pipelines.fairness.confusion import binary_metrics
from pipelines.fairness.metrics import BootstrapSettings, score_groups
from pipelines.fairness.predictions import PREDICTION_COLUMNS, PredictionsError, validate_predictions
from pipelines.fairness.subgroups import age_band_labels, age_bands
from pipelines.fairness.threshold import choose_threshold, predict, threshold_for

TOL = 1e-9
GROUPS = ["g1", "g2", "g3", "g4", "g5"]


def random_predictions(seed: int = 7, n: int = 1500) -> pd.DataFrame:
    """Several groups of different size, prevalence and score quality; scores rounded so ties occur."""
    rng = np.random.default_rng(seed)
    group = rng.choice([*GROUPS, "unknown"], size=n, p=[0.3, 0.25, 0.2, 0.1, 0.1, 0.05])
    prevalence = pd.Series(group).map({"g1": 0.2, "g2": 0.35, "g3": 0.5, "g4": 0.15, "g5": 0.3, "unknown": 0.3})
    label = (rng.random(n) < prevalence.to_numpy()).astype(int)
    quality = pd.Series(group).map({"g1": 1.5, "g2": 1.0, "g3": 0.5, "g4": 2.0, "g5": 0.8, "unknown": 1.0})
    logit = quality.to_numpy() * (2 * label - 1) + rng.normal(0, 1, n)
    score = np.round(1 / (1 + np.exp(-logit)), 2)
    return pd.DataFrame({"group": group, "label": label, "score": score})


def test_per_group_metrics_match_fairlearn_and_sklearn():
    frame, threshold = random_predictions(), 0.45
    table, gaps = score_groups(frame, "group", threshold, [*GROUPS, "unknown"],
                               bootstrap=BootstrapSettings(samples=0), key="t")
    table = table.set_index("group")
    y, scores, pred = frame["label"], frame["score"], predict(frame["score"], threshold)
    labels = MetricFrame(
        metrics={"accuracy": accuracy_score, "sensitivity": recall_score, "specificity": true_negative_rate,
                 "balanced_accuracy": balanced_accuracy_score, "selection_rate": selection_rate,
                 "fpr": false_positive_rate},
        y_true=y, y_pred=pred, sensitive_features=frame["group"])
    auc = MetricFrame(metrics=roc_auc_score, y_true=y, y_pred=scores, sensitive_features=frame["group"])
    for group in [*GROUPS, "unknown"]:
        members = frame[frame["group"] == group]
        assert table.loc[group, "n"] == len(members)
        assert table.loc[group, "positives"] == members["label"].sum()
        for metric in labels.by_group.columns:
            assert table.loc[group, metric] == pytest.approx(labels.by_group.loc[group, metric], abs=TOL), metric
        assert table.loc[group, "auc"] == pytest.approx(auc.by_group.loc[group], abs=TOL)
        assert table.loc[group, "auc"] == pytest.approx(roc_auc_score(members["label"], members["score"]), abs=TOL)
    # Gaps compare the known groups only: fairlearn on the rows without "unknown".
    known = frame[frame["group"] != "unknown"]
    kwargs = {"y_true": known["label"], "y_pred": predict(known["score"], threshold),
              "sensitive_features": known["group"]}
    assert gaps["groups_compared"] == len(GROUPS)
    assert gaps["sensitivity_gap"] == pytest.approx(equal_opportunity_difference(**kwargs), abs=TOL)
    assert gaps["equalized_odds"] == pytest.approx(equalized_odds_difference(**kwargs), abs=TOL)
    assert gaps["demographic_parity"] == pytest.approx(demographic_parity_difference(**kwargs), abs=TOL)
    known_auc = MetricFrame(metrics=roc_auc_score, y_true=known["label"], y_pred=known["score"],
                            sensitive_features=known["group"])
    assert gaps["auc_gap"] == pytest.approx(known_auc.difference(), abs=TOL)
    assert not table.loc["unknown", "in_gaps"] and table.loc[GROUPS, "in_gaps"].all()


def test_group_without_positives_is_nan_with_a_reason_and_left_out_of_sensitivity_gaps():
    frame = random_predictions()
    frame.loc[frame["group"] == "g4", "label"] = 0
    table, gaps = score_groups(frame, "group", 0.45, GROUPS, bootstrap=BootstrapSettings(samples=50), key="t")
    g4 = table.set_index("group").loc["g4"]
    assert np.isnan(g4["auc"]) and np.isnan(g4["sensitivity"]) and np.isnan(g4["balanced_accuracy"])
    assert np.isnan(g4["auc_low"]) and np.isnan(g4["sensitivity_high"])
    assert g4["note"] == "no malignant: AUC, sensitivity, balanced accuracy undefined"
    assert g4["specificity"] == pytest.approx(true_negative_rate(np.zeros(int(g4["n"])),
                                                                 predict(frame[frame["group"] == "g4"]["score"], 0.45)))
    assert np.isfinite(g4["accuracy_low"]) and np.isfinite(g4["specificity_low"])
    others = table[table["group"] != "g4"]
    assert gaps["sensitivity_gap"] == pytest.approx(others["sensitivity"].max() - others["sensitivity"].min(), abs=TOL)
    assert gaps["demographic_parity"] == pytest.approx(table["selection_rate"].max() - table["selection_rate"].min(),
                                                       abs=TOL)  # selection rate is defined for g4


def test_min_group_size_keeps_small_groups_out_of_the_gaps():
    frame = random_predictions()
    sizes = frame["group"].value_counts()
    table, gaps = score_groups(frame, "group", 0.45, GROUPS, bootstrap=BootstrapSettings(samples=0), key="t",
                               min_group_size=int(sizes["g4"]) + 1)
    kept = table[table["group"].isin([g for g in GROUPS if sizes[g] > sizes["g4"]])]
    assert gaps["groups_compared"] == len(kept) == table["in_gaps"].sum()
    assert gaps["auc_gap"] == pytest.approx(kept["auc"].max() - kept["auc"].min(), abs=TOL)


def test_binary_metrics_single_class_notes():
    assert binary_metrics(np.array([1, 1]), np.array([0.2, 0.9]), 0.5)["note"].startswith("no benign")
    empty = binary_metrics(np.array([], dtype=int), np.array([]), 0.5)
    assert empty["n"] == 0 and np.isnan(empty["accuracy"]) and empty["note"].startswith("no images")


def test_bootstrap_equals_sklearn_on_the_same_resamples():
    """The vectorised counting gives, resample by resample, what sklearn computes on explicit indices."""
    frame = random_predictions()
    members = frame[frame["group"] == "g2"]
    labels, scores, samples = members["label"].to_numpy(), members["score"].to_numpy(), 40
    drawn = bootstrap_metrics(labels, scores, 0.45, samples, group_rng(3, "key"))
    rng = group_rng(3, "key")  # replay the same draws: positives then negatives, one chunk
    positives, negatives = scores[labels == 1], scores[labels == 0]
    pos_idx = rng.integers(0, len(positives), size=(samples, len(positives)))
    neg_idx = rng.integers(0, len(negatives), size=(samples, len(negatives)))
    for b in range(samples):
        s = np.concatenate([positives[pos_idx[b]], negatives[neg_idx[b]]])
        y = np.concatenate([np.ones(len(positives)), np.zeros(len(negatives))]).astype(int)
        assert drawn["auc"][b] == pytest.approx(roc_auc_score(y, s), abs=TOL)
        assert drawn["sensitivity"][b] == pytest.approx(recall_score(y, predict(s, 0.45)), abs=TOL)
        assert drawn["balanced_accuracy"][b] == pytest.approx(balanced_accuracy_score(y, predict(s, 0.45)), abs=TOL)
        assert drawn["accuracy"][b] == pytest.approx(accuracy_score(y, predict(s, 0.45)), abs=TOL)


def test_bootstrap_is_reproducible_and_contains_the_point_estimate():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 4000)
    scores = np.clip(0.5 + 0.2 * (2 * labels - 1) + rng.normal(0, 0.2, 4000), 0, 1)
    frame = pd.DataFrame({"group": "a", "label": labels, "score": scores})
    settings = BootstrapSettings(samples=500, seed=11)
    first, _ = score_groups(frame, "group", 0.5, ["a"], bootstrap=settings, key="k")
    again, _ = score_groups(frame, "group", 0.5, ["a"], bootstrap=settings, key="k")
    other, _ = score_groups(frame, "group", 0.5, ["a"], bootstrap=BootstrapSettings(samples=500, seed=12), key="k")
    pd.testing.assert_frame_equal(first, again)
    assert first.loc[0, "auc_low"] != other.loc[0, "auc_low"]
    for metric in ("auc", "accuracy", "sensitivity", "specificity", "balanced_accuracy"):
        low, point, high = first.loc[0, [f"{metric}_low", metric, f"{metric}_high"]]
        assert low < point < high, metric
        assert high - low < 0.06, metric  # n = 4000: a tight interval
    assert percentile_interval(np.array([np.nan]), 0.95) == pytest.approx((np.nan, np.nan), nan_ok=True)


def test_bootstrap_is_fast():
    """1000 resamples x 10 groups x 2000 rows each (20,000 rows) in well under two seconds."""
    rng = np.random.default_rng(0)
    n = 20_000
    frame = pd.DataFrame({"group": np.repeat([f"g{i}" for i in range(10)], n // 10),
                          "label": rng.integers(0, 2, n), "score": rng.random(n)})
    start = time.process_time()  # CPU time: other processes on a shared machine do not count
    table, gaps = score_groups(frame, "group", 0.5, [f"g{i}" for i in range(10)],
                               bootstrap=BootstrapSettings(samples=1000), key="speed")
    elapsed = time.process_time() - start
    assert elapsed < 2.0, f"bootstrap took {elapsed:.2f} s"
    assert table["auc_low"].notna().all() and np.isfinite(gaps["auc_gap_high"])


def test_youden_threshold_hand_example():
    # candidates: 0.1 J=0, 0.3 J=1/3, 0.4 J=2/3, 0.6 J=1/3, 0.7 J=2/3, 0.9 J=1/3 -> tie 0.4 / 0.7 -> lower
    labels = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.3, 0.6, 0.4, 0.7, 0.9])
    assert choose_threshold(labels, scores) == 0.4
    assert choose_threshold(labels, np.array([0.1, 0.3, 0.6, 0.35, 0.7, 0.9])) == 0.35  # tie again, lower wins
    assert choose_threshold(labels, np.array([0.1, 0.3, 0.5, 0.6, 0.7, 0.9])) == 0.6  # J = 1: perfect split


def test_youden_threshold_brute_force_and_fallbacks():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, 300)
    scores = np.round(np.clip(0.5 + 0.15 * (2 * labels - 1) + rng.normal(0, 0.25, 300), 0, 1), 2)
    best = max(((scores[labels == 1] >= t).mean() + (scores[labels == 0] < t).mean(), -t) for t in np.unique(scores))
    assert choose_threshold(labels, scores) == -best[1]
    assert choose_threshold(np.ones(5, dtype=int), rng.random(5)) == 0.5
    assert choose_threshold(np.array([], dtype=int), np.array([])) == 0.5
    assert threshold_for(labels, scores, "fixed", 0.3).threshold == 0.3



def test_specificity_threshold_hand_example_and_brute_force():
    # benign 0.1 0.2 0.3 0.4 0.5: specificity 0.8 needs 4 benign below t -> t = the lowest score above 0.4
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.45, 0.6, 0.9])
    choice = threshold_for(labels, scores, "specificity", target_specificity=0.8)
    assert (choice.threshold, choice.rule) == (0.45, "specificity")
    assert "sensitivity 1.0000" in choice.note  # 0.45, 0.6, 0.9 >= t
    # Specificity 1 needs t above every benign score, even when the top score is benign.
    assert threshold_for(labels, scores, "specificity", target_specificity=0.99).threshold == 0.6
    assert threshold_for(np.array([1, 0]), np.array([0.2, 0.7]), "specificity",
                         target_specificity=0.9).threshold > 0.7
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300), 2)
    for target in (0.5, 0.8, 0.95):
        benign = scores[labels == 0]
        lowest = min(t for t in np.unique(scores) if (benign < t).mean() >= target - 1e-12)
        assert threshold_for(labels, scores, "specificity", target_specificity=target).threshold == lowest
    assert threshold_for(np.ones(4, dtype=int), rng.random(4), "specificity").rule == "fallback"


def test_age_bands():
    assert age_band_labels([30, 45, 60, 75]) == ["<30", "30-44", "45-59", "60-74", "75+"]
    ages = pd.Series([np.nan, 0, 29, 30, 44, 45, 74, 75, 90])
    assert list(age_bands(ages, [30, 45, 60, 75])) == [
        "unknown", "<30", "<30", "30-44", "30-44", "45-59", "60-74", "75+", "75+"]


def _predictions(n: int = 5) -> pd.DataFrame:
    return pd.DataFrame({
        "classifier": "baseline", "test_set": "ddi", "image_id": [f"{i:06d}" for i in range(n)],
        "label": [0, 1] * (n // 2) + [0] * (n % 2), "score": np.linspace(0, 1, n), "skin_tone_group": "A",
        "sex": ["male", None, "Female", "unknown", "male"][:n], "age_approx": [40.0, np.nan, 55, 60, 35][:n],
        "anatom_site_general": None, "source": "ddi"})


def test_validator_normalises_and_names_column_and_rows():
    table = validate_predictions(_predictions())
    assert list(table["sex"]) == ["male", "unknown", "female", "unknown", "male"]
    assert set(table["anatom_site_general"]) == {"unknown"}
    assert table["label"].dtype == "int64" and table["score"].dtype == "float64"
    assert list(table.columns) == list(PREDICTION_COLUMNS)
    bad = _predictions().assign(label=[0, 1, 2, 1, 0])
    with pytest.raises(PredictionsError, match=r"preds.parquet: column 'label' expected 0 or 1; 1 row\(s\) fail: 2$"):
        validate_predictions(bad, "preds.parquet")
    with pytest.raises(PredictionsError, match=r"column 'score' expected a probability in \[0, 1\]; 2 row"):
        validate_predictions(_predictions().assign(score=[0.1, 1.5, np.nan, 0.2, 0.3]))
    with pytest.raises(PredictionsError, match=r"missing column\(s\) \['source'\]"):
        validate_predictions(_predictions().drop(columns="source"))
    with pytest.raises(PredictionsError, match=r"column 'image_id' expected one row per .*: 0, 4"):
        validate_predictions(_predictions().assign(image_id=["a", "b", "c", "d", "a"]))
    with pytest.raises(PredictionsError, match="column 'skin_tone_group'"):
        validate_predictions(_predictions().assign(skin_tone_group="D"))
    with pytest.raises(PredictionsError, match="column 'test_set' expected a name"):
        validate_predictions(_predictions().assign(test_set="../x"))
