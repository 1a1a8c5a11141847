"""The report's tables, built from the per-group metrics table (one row per classifier x test set x
attribute x group, columns of pipelines.fairness.metrics.score_groups plus classifier/test_set)."""

from __future__ import annotations

import math

import pandas as pd

from pipelines.fairness.metrics import GAP_NAMES, OVERALL

# Row names of the Class-N-Diff paper's Table III (Atlas = Derm7pt; MClass D/ND = derm/clinic).
TEST_SET_NAMES = {
    "isic_test": "ISIC test (in-domain)", "ddi": "DDI all", "ddi_A": "DDI A (FST I-II)",
    "ddi_B": "DDI B (FST III-IV)", "ddi_C": "DDI C (FST V-VI)", "fitzpatrick17k": "Fitzpatrick17k",
    "derm7pt_derm": "Atlas derm", "derm7pt_clinic": "Atlas clinic", "asan": "ASAN",
    "mclass_d": "MClass derm", "mclass_nd": "MClass clinic",
}
TABLE_III_METRICS = (("accuracy", "accuracy"), ("auc", "AUC"), ("sensitivity", "sensitivity"))


def test_set_name(test_set: str) -> str:
    return TEST_SET_NAMES.get(test_set, test_set)


def number(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def with_interval(row: pd.Series, metric: str) -> str:
    if math.isnan(row[metric]):
        return "n/a"
    return f"{row[metric]:.3f} [{number(row[f'{metric}_low'])}, {number(row[f'{metric}_high'])}]"


def table_iii(groups: pd.DataFrame, test_sets: list[str], classifiers: list[str]) -> pd.DataFrame:
    """Rows = test sets, columns = classifier x (accuracy, AUC, sensitivity), as the paper's Table III;
    a classifier without predictions on a test set gets "-"."""
    overall = groups[groups["attribute"] == OVERALL].set_index(["classifier", "test_set"])
    rows = []
    for test_set in test_sets:
        present = overall.xs(test_set, level="test_set") if test_set in overall.index.get_level_values(1) else None
        first = present.iloc[0] if present is not None else None
        row = {"test set": test_set_name(test_set),
               "n (malignant)": f"{int(first['n'])} ({int(first['positives'])})" if first is not None else "-"}
        for classifier in classifiers:
            for metric, name in TABLE_III_METRICS:
                has = present is not None and classifier in present.index
                row[f"{classifier} {name}"] = number(present.loc[classifier, metric]) if has else "-"
        rows.append(row)
    return pd.DataFrame(rows)


def gap_table(gaps: pd.DataFrame, test_sets: list[str], classifiers: list[str], attribute: str, gap: str
              ) -> pd.DataFrame:
    """Rows = test sets, columns = classifiers, cells = one gap across `attribute` with its 95 % CI."""
    chosen = gaps[gaps["attribute"] == attribute].set_index(["test_set", "classifier"])
    rows = []
    for test_set in test_sets:
        row = {"test set": test_set_name(test_set)}
        for classifier in classifiers:
            if (test_set, classifier) not in chosen.index:
                row[classifier] = "-"
                continue
            values = chosen.loc[(test_set, classifier)]
            row[classifier] = (f"{number(values[gap])} [{number(values[f'{gap}_low'])}, "
                               f"{number(values[f'{gap}_high'])}] ({int(values['groups_compared'])} groups)")
        rows.append(row)
    return pd.DataFrame(rows)


def attribute_gap_table(gaps: pd.DataFrame, test_set: str, classifiers: list[str]) -> pd.DataFrame:
    """One test set: rows = classifier x attribute, cells = every gap with its 95 % CI."""
    chosen = gaps[gaps["test_set"] == test_set]
    rows = []
    for classifier in classifiers:
        for values in chosen[chosen["classifier"] == classifier].to_dict("records"):
            row = {"classifier": classifier, "attribute": values["attribute"],
                   "groups compared": int(values["groups_compared"])}
            for gap in GAP_NAMES:
                row[gap.replace("_", " ")] = (f"{number(values[gap])} [{number(values[f'{gap}_low'])}, "
                                              f"{number(values[f'{gap}_high'])}]")
            rows.append(row)
    return pd.DataFrame(rows)


def group_table(groups: pd.DataFrame, test_set: str, attribute: str, order: list[str], classifiers: list[str]
                ) -> pd.DataFrame:
    """One test set and attribute: rows = group x classifier with n, malignant and metrics with CIs."""
    chosen = groups[(groups["test_set"] == test_set) & (groups["attribute"] == attribute)]
    rows = []
    for group in order:
        for classifier in classifiers:
            match = chosen[(chosen["group"] == group) & (chosen["classifier"] == classifier)]
            if match.empty:
                continue
            row = match.iloc[0]
            rows.append({
                "group": group, "classifier": classifier, "n": int(row["n"]), "malignant": int(row["positives"]),
                "accuracy": with_interval(row, "accuracy"), "AUC": with_interval(row, "auc"),
                "sensitivity": with_interval(row, "sensitivity"), "specificity": with_interval(row, "specificity"),
                "balanced accuracy": with_interval(row, "balanced_accuracy"),
                "in gaps": "yes" if row["in_gaps"] else "no", "note": row["note"],
            })
    return pd.DataFrame(rows)
