"""Per-subgroup metrics of one classifier on one test set, with bootstrap CIs, and the fairness gaps.

Per group: n, positives, accuracy, AUC, sensitivity, specificity, balanced accuracy (the mean of the
two), selection rate and FPR, at the classifier's validation threshold (METHOD.md §5). Gaps across
the groups of one attribute (fairlearn's "between_groups" differences):

    auc_gap             max - min AUC
    sensitivity_gap     max - min sensitivity (TPR): the equal-opportunity difference
    fpr_gap             max - min false-positive rate
    equalized_odds      max(sensitivity_gap, fpr_gap)       (fairlearn equalized_odds_difference)
    demographic_parity  max - min positive-prediction rate  (fairlearn demographic_parity_difference)

A gap compares the known groups ("unknown" never takes part) with at least `min_group_size` images
and the metric defined (a group without malignant lesions has no sensitivity); with fewer than two
such groups the gap is NaN. Its CI comes from the same per-group resamples (groups are resampled
independently, so resample b of the gap is the spread of resample b across groups).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.fairness.bootstrap import bootstrap_metrics, group_rng, percentile_interval
from pipelines.fairness.confusion import METRICS, binary_metrics
from pipelines.fairness.subgroups import UNKNOWN

GAPS = {"auc_gap": "auc", "sensitivity_gap": "sensitivity", "fpr_gap": "fpr", "demographic_parity": "selection_rate"}
GAP_NAMES = ("auc_gap", "sensitivity_gap", "fpr_gap", "equalized_odds", "demographic_parity")
OVERALL = "all"  # attribute and group name of the whole test set


@dataclass(frozen=True)
class BootstrapSettings:
    samples: int = 1000
    confidence: float = 0.95
    seed: int = 0


def score_groups(frame: pd.DataFrame, attribute: str, threshold: float, order: list[str], *,
                 bootstrap: BootstrapSettings, key: str, min_group_size: int = 1
                 ) -> tuple[pd.DataFrame, dict[str, float]]:
    """(one row per group of `attribute` in `order`, the gaps with their CIs). `key` names the
    classifier and test set for the random streams, e.g. "baseline|ddi"."""
    rows, resamples = [], {}
    for group in order:
        members = frame[frame[attribute] == group]
        labels, scores = members["label"].to_numpy(), members["score"].to_numpy()
        row = {"attribute": attribute, "group": group, **binary_metrics(labels, scores, threshold)}
        draws = bootstrap_metrics(labels, scores, threshold, bootstrap.samples,
                                  group_rng(bootstrap.seed, f"{key}|{attribute}|{group}"))
        for name in METRICS:
            row[f"{name}_low"], row[f"{name}_high"] = percentile_interval(draws[name], bootstrap.confidence)
        row["in_gaps"] = group != UNKNOWN and group != OVERALL and row["n"] >= min_group_size
        rows.append(row)
        if row["in_gaps"]:
            resamples[group] = draws
    table = pd.DataFrame(rows, columns=_group_columns())
    return table, gaps(table, resamples, bootstrap.confidence)


def gaps(table: pd.DataFrame, resamples: dict[str, dict[str, np.ndarray]], confidence: float) -> dict[str, float]:
    """Point gaps over the rows with `in_gaps`, and percentile CIs from their resamples."""
    compared = table[table["in_gaps"]]
    result: dict[str, float] = {"groups_compared": int(len(compared))}
    point = {name: _spread(compared[metric].to_numpy()[:, None])[0] for name, metric in GAPS.items()}
    point["equalized_odds"] = _max_defined(point["sensitivity_gap"], point["fpr_gap"])
    drawn = {}
    for name, metric in GAPS.items():
        stacked = np.stack([resamples[g][metric] for g in compared["group"]]) if len(compared) else np.empty((0, 0))
        drawn[name] = _spread(stacked) if stacked.size else np.empty(0)
    drawn["equalized_odds"] = (np.fmax(drawn["sensitivity_gap"], drawn["fpr_gap"])
                               if drawn["sensitivity_gap"].size else np.empty(0))
    for name in GAP_NAMES:
        result[name] = float(point[name])
        result[f"{name}_low"], result[f"{name}_high"] = percentile_interval(drawn[name], confidence)
    return result


def score_overall(frame: pd.DataFrame, threshold: float, *, bootstrap: BootstrapSettings, key: str) -> dict:
    """The whole test set as one group (attribute and group "all"), with CIs."""
    table, _ = score_groups(frame.assign(**{OVERALL: OVERALL}), OVERALL, threshold, [OVERALL],
                            bootstrap=bootstrap, key=key)
    return table.iloc[0].to_dict()


def _spread(values: np.ndarray) -> np.ndarray:
    """max - min down axis 0 over the defined (non-NaN) entries; NaN where fewer than two are defined."""
    defined = np.isfinite(values)
    count = defined.sum(axis=0)
    high = np.where(defined, values, -np.inf).max(axis=0, initial=-np.inf)
    low = np.where(defined, values, np.inf).min(axis=0, initial=np.inf)
    return np.where(count >= 2, high - low, np.nan)


def _max_defined(a: float, b: float) -> float:
    return float(np.fmax(a, b))  # NaN only when both are NaN


def _group_columns() -> list[str]:
    intervals = [f"{name}_{end}" for name in METRICS for end in ("low", "high")]
    return ["attribute", "group", "n", "positives", *METRICS, "note", *intervals, "in_gaps"]
