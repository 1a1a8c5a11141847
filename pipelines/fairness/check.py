"""The blocking fairness check: is the classifier about to be promoted fair enough on every test set?

Reads the `metrics.json` dict of the `fairness_report` stage; Dagster's asset check and the CLI call
the same function. A classifier that was not scored fails (it cannot be promoted unseen).
"""

from __future__ import annotations

import math

from pipelines.fairness.params import FairnessParams
from pipelines.fairness.subgroups import SKIN_TONE_GROUPS, SUBGROUP_ATTRIBUTES


def fairness_check(metrics: dict, params: FairnessParams) -> tuple[bool, dict]:
    """(passed, details): every checked gap of `params.check.classifier` within its limit on every
    checked test set. `details` lists each test set's gaps, the limits and the failures in words."""
    check = params.check
    short = SUBGROUP_ATTRIBUTES[check.attribute]
    limits = {name: limit for name, limit in (("sensitivity_gap", check.max_sensitivity_gap),
                                                ("auc_gap", check.max_auc_gap),
                                                ("equalized_odds", check.max_equalized_odds)) if limit is not None}
    details: dict = {"classifier": check.classifier, "attribute": check.attribute, "limits": limits,
                     "test_sets": {}, "failures": [], "unmeasurable": []}
    scored = metrics.get(check.classifier)
    if not scored:
        details["failures"].append(f"classifier {check.classifier!r} has no metrics (scored: {sorted(metrics)})")
        return False, details
    # By default every scored test set except the per-skin-tone subsets (ddi_A, ...), whose parent
    # set is checked already and which hold one skin-tone group each.
    derived = {f"{base}_{group}" for base in params.split_by_skin_tone for group in SKIN_TONE_GROUPS}
    test_sets = check.test_sets if check.test_sets is not None else [t for t in scored if t not in derived]
    for test_set in test_sets:
        if test_set not in scored:
            details["failures"].append(f"{check.classifier} on {test_set}: not scored (scored: {sorted(scored)})")
            continue
        values = {name: scored[test_set].get(f"{name}_{short}") for name in limits}
        details["test_sets"][test_set] = values
        for name, limit in limits.items():
            value = values[name]
            where = f"{check.classifier} on {test_set}: {name} across {check.attribute}"
            if value is None or (isinstance(value, float) and math.isnan(value)):
                details["unmeasurable"].append(f"{where} not measurable (fewer than two groups with it defined)")
                if check.fail_when_unmeasurable:
                    details["failures"].append(f"{where} not measurable and fail_when_unmeasurable is set")
            elif value > limit:
                details["failures"].append(f"{where} = {value:.4f} > {limit}")
        _check_auc_drop(scored[test_set], metrics, test_set, check, details)
    return not details["failures"], details


def _check_auc_drop(scored: dict, metrics: dict, test_set: str, check, details: dict) -> None:  # noqa: ANN001
    if check.max_auc_drop is None or check.reference_classifier is None:
        return
    reference = metrics.get(check.reference_classifier, {}).get(test_set, {}).get("auc")
    value = scored.get("auc")
    details["test_sets"][test_set]["auc_drop_vs_" + check.reference_classifier] = (
        None if reference is None or value is None else reference - value)
    if reference is None or value is None:
        details["unmeasurable"].append(
            f"{check.classifier} vs {check.reference_classifier} on {test_set}: AUC missing")
    elif reference - value > check.max_auc_drop:
        details["failures"].append(f"{check.classifier} on {test_set}: AUC {value:.4f} is {reference - value:.4f} "
                                   f"below {check.reference_classifier}'s {reference:.4f} (> {check.max_auc_drop})")
