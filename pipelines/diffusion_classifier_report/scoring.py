"""Every test set the report classified, scored per subgroup by the fairness report's own functions.

The predictions go through `pipelines.fairness.report`'s preparation (age bands; `ddi` also as
`ddi_A/B/C`), per-group scoring (`score_all`: overall row + one row per group of each attribute, with
bootstrap CIs and the gaps) and metrics layout (`metrics_json`), at the one validation threshold. With the
same threshold rule, bootstrap settings and min_group_size as fairness_report, these are the numbers the
fairness report prints for the diffusion classifier.
"""

from __future__ import annotations

import pandas as pd

from pipelines.diffusion_classifier_report.params import DiffusionClassifierReportParams
from pipelines.diffusion_classifier_report.rows import CLASSIFIER
from pipelines.fairness.params import FairnessParams
from pipelines.fairness.report import metrics_json, prepare_predictions, score_all
from pipelines.fairness.threshold import ThresholdChoice


def fairness_settings(params: DiffusionClassifierReportParams) -> FairnessParams:
    """The fairness report's parameters with this report's threshold rule, bootstrap and group size."""
    return FairnessParams(bootstrap_samples=params.bootstrap_samples, seed=params.seed,
                          threshold_rule=params.threshold_rule, fixed_threshold=params.fixed_threshold,
                          min_group_size=params.min_group_size)


def score_test_sets(predictions: pd.DataFrame, threshold: ThresholdChoice, settings: FairnessParams
                    ) -> tuple[pd.DataFrame, dict[str, dict]]:
    """(per-group rows of every test set, test set -> {n, auc, ..., <gap>_<attribute>}) of the predictions."""
    table = prepare_predictions(predictions, settings)
    test_sets = list(dict.fromkeys(table["test_set"]))
    groups, gaps = score_all(table, [CLASSIFIER], test_sets, {CLASSIFIER: threshold}, settings)
    return groups, metrics_json(groups, gaps)[CLASSIFIER]
