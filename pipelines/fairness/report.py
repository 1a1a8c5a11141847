"""The `fairness_report` stage: every classifier on every test set, per subgroup, side by side.

Inputs: the predictions table of all classifiers on all test sets, their validation predictions (for
each classifier's decision threshold, pipelines.fairness.threshold), and FairnessParams. Outputs in
`out/`: `metrics.json` (DVC metrics: classifier -> test set -> metric, NaN written as null),
`groups.parquet`/`groups.csv` (one row per classifier x test set x attribute x group, with CIs,
plus the gaps as attribute rows of `gaps.csv`), `report.md`/`report.html` (Table III layout, then
gaps and per-group tables), `plots/*.png`, and `isic/<test_set>/{ground_truth,<classifier>}.csv`
in the ISIC challenge layout. A configured test set without predictions is listed as skipped.
"""

from __future__ import annotations

import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from pipelines.atomic_files import atomic_path, write_json, write_parquet
from pipelines.fairness.check import fairness_check
from pipelines.fairness.document import Heading, Image, Paragraph, Table, to_html, to_markdown
from pipelines.fairness.experiment import arm_metrics, experiment_table, run_experiment
from pipelines.fairness.experiment_plot import plot_experiment
from pipelines.fairness.metrics import GAP_NAMES, OVERALL, BootstrapSettings, score_groups, score_overall
from pipelines.fairness.params import FairnessParams
from pipelines.fairness.plots import plot_group_bars, plot_roc_by_skin_tone
from pipelines.fairness.predictions import (
    PredictionsError,
    isic_ground_truth_frame,
    isic_prediction_frame,
    read_predictions,
    write_isic_csv,
)
from pipelines.fairness.subgroups import SKIN_TONE_GROUPS, SUBGROUP_ATTRIBUTES, add_age_band, group_order
from pipelines.fairness.tables import attribute_gap_table, gap_table, group_table, table_iii, test_set_name
from pipelines.fairness.threshold import ThresholdChoice, rule_text, threshold_for

__all__ = ["FairnessReportOutputs", "fairness_check", "output_paths", "run_fairness_report"]

log = logging.getLogger(__name__)
SKIPPED = "not configured - skipped"
OVERALL_METRICS = ("n", "positives", "auc", "accuracy", "sensitivity", "specificity", "balanced_accuracy")


@dataclass(frozen=True)
class FairnessReportOutputs:
    metrics: Path
    experiment: Path  # experiment.json: arms, paired-bootstrap CIs, the headline (absent without arms)
    groups: Path
    groups_csv: Path
    gaps_csv: Path
    markdown: Path
    html: Path
    plots: Path  # folder of PNGs
    isic: Path  # folder of ISIC-layout CSVs
    summary: dict


def output_paths(out: Path) -> dict[str, Path]:
    out = Path(out)
    return {"metrics": out / "metrics.json", "experiment": out / "experiment.json", "groups": out / "groups.parquet",
            "groups_csv": out / "groups.csv",
            "gaps_csv": out / "gaps.csv", "markdown": out / "report.md", "html": out / "report.html",
            "plots": out / "plots", "isic": out / "isic"}


def run_fairness_report(predictions: Path, validation_predictions: Path | None, params: FairnessParams,
                        out: Path) -> FairnessReportOutputs:
    paths = output_paths(out)
    table = prepare_predictions(read_predictions(predictions), params)
    if table.empty:
        raise PredictionsError(f"{predictions}: no predictions to score (expected rows of {params.test_sets})")
    validation = read_predictions(validation_predictions) if validation_predictions is not None else None
    classifiers = list(dict.fromkeys(table["classifier"]))
    thresholds = choose_thresholds(validation, classifiers, params)
    present = set(table["test_set"])
    test_sets = [t for t in params.test_sets if t in present] + sorted(present - set(params.test_sets))
    skipped = [t for t in params.test_sets if t not in present]

    groups, gaps = score_all(table, classifiers, test_sets, thresholds, params)
    metrics = metrics_json(groups, gaps)
    derived = {f"{base}_{group}" for base in params.split_by_skin_tone for group in SKIN_TONE_GROUPS}
    experiment = run_experiment(table, {c: t.threshold for c, t in thresholds.items()},
                                [t for t in test_sets if t not in derived], params.bootstrap_samples,
                                params.confidence, params.seed)
    if experiment:
        metrics |= arm_metrics(metrics, experiment["arms"])
    passed, check_details = fairness_check(metrics, params)

    for folder in (paths["plots"], paths["isic"]):  # outputs of an earlier run must not linger
        shutil.rmtree(folder, ignore_errors=True)
    write_json(metrics, paths["metrics"])
    write_parquet(groups, paths["groups"])
    _write_csv(groups, paths["groups_csv"])
    _write_csv(gaps, paths["gaps_csv"])
    isic_files = export_isic(table, paths["isic"])
    plots = draw_plots(table, groups, classifiers, test_sets, thresholds, params, paths["plots"])
    experiment_plots = []
    if experiment:
        write_json(experiment, paths["experiment"])
        experiment_plots = [plot_experiment(experiment, t, paths["plots"] / f"experiment__{t}.png")
                            for t in experiment["test_sets"]]
    blocks = experiment_blocks(experiment, experiment_plots, paths["markdown"].parent) + report_blocks(
        groups, gaps, classifiers, test_sets, skipped, thresholds, params, plots, (passed, check_details),
        paths["markdown"].parent)
    with atomic_path(paths["markdown"]) as temp:
        temp.write_text(to_markdown(blocks))
    with atomic_path(paths["html"]) as temp:
        temp.write_text(to_html(blocks, "Fairness report"))

    summary = {
        "classifiers": classifiers, "test_sets": test_sets,
        "skipped_test_sets": {t: SKIPPED for t in skipped},
        "thresholds": {c: {"threshold": t.threshold, "rule": t.rule, "note": t.note} for c, t in thresholds.items()},
        "headline": {c: {t: {k: metrics[c][t].get(k) for k in ("auc", "sensitivity", "sensitivity_gap_skin_tone")}
                         for t in metrics[c]} for c in metrics},
        "check": {"passed": passed, **check_details},
        "experiment_headline": experiment.get("headline") if experiment else None,
        "table_iii_markdown": table_iii(groups, test_sets, classifiers).to_markdown(index=False),
        "experiment_markdown": (to_markdown(experiment_blocks(experiment, [], out)[1:4]) if experiment else None),
        "plots": [p.relative_to(out).as_posix() for p in plots],
        "isic_csvs": len(isic_files),
        "bootstrap_samples": params.bootstrap_samples, "seed": params.seed,
    }
    log.info("fairness report: %d classifiers x %d test sets (%d skipped); check %s", len(classifiers),
             len(test_sets), len(skipped), "passed" if passed else "failed")
    return FairnessReportOutputs(summary=summary, **paths)


def prepare_predictions(table: pd.DataFrame, params: FairnessParams) -> pd.DataFrame:
    """Add the age band and the per-skin-tone test sets (`ddi` -> `ddi_A`, `ddi_B`, `ddi_C`)."""
    parts = [table]
    for base in params.split_by_skin_tone:
        for group in SKIN_TONE_GROUPS:
            name = f"{base}_{group}"
            if name in set(table["test_set"]):
                raise PredictionsError(f"predictions: test_set {name!r} is also derived from {base!r} "
                                       f"(params split_by_skin_tone); expected only one of them")
            subset = table[(table["test_set"] == base) & (table["skin_tone_group"] == group)]
            parts.append(subset.assign(test_set=name))
    return add_age_band(pd.concat(parts, ignore_index=True), params.age_band_edges)


def choose_thresholds(validation: pd.DataFrame | None, classifiers: list[str], params: FairnessParams
                      ) -> dict[str, ThresholdChoice]:
    chosen = {}
    for classifier in classifiers:
        rows = validation[validation["classifier"] == classifier] if validation is not None else None
        if params.threshold_rule != "fixed" and (rows is None or rows.empty):
            log.warning("%s: no validation predictions; threshold 0.5", classifier)
            chosen[classifier] = ThresholdChoice(0.5, "fallback", "no validation predictions: threshold 0.5")
            continue
        labels = rows["label"].to_numpy() if rows is not None else []
        scores = rows["score"].to_numpy() if rows is not None else []
        chosen[classifier] = threshold_for(labels, scores, params.threshold_rule, params.fixed_threshold,
                                           params.target_specificity)
    return chosen


def score_all(table: pd.DataFrame, classifiers: list[str], test_sets: list[str],
              thresholds: dict[str, ThresholdChoice], params: FairnessParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-group rows incl. the overall "all" row, per-attribute gap rows) of every classifier x test set."""
    bootstrap = BootstrapSettings(params.bootstrap_samples, params.confidence, params.seed)
    group_rows, gap_rows = [], []
    pairs = [(c, t) for t in test_sets for c in classifiers]
    for classifier, test_set in tqdm(pairs, desc="fairness: scoring", unit="set", leave=False):
        rows = table[(table["classifier"] == classifier) & (table["test_set"] == test_set)]
        if rows.empty:
            continue
        threshold, key = thresholds[classifier].threshold, f"{classifier}|{test_set}"
        context = {"classifier": classifier, "test_set": test_set, "threshold": threshold}
        group_rows.append(pd.DataFrame([{**context, **score_overall(rows, threshold, bootstrap=bootstrap, key=key)}]))
        for attribute in params.subgroups:
            order = group_order(attribute, list(rows[attribute]), params.age_band_edges)
            groups, gaps = score_groups(rows, attribute, threshold, order, bootstrap=bootstrap, key=key,
                                        min_group_size=params.min_group_size)
            group_rows.append(groups.assign(**context))
            gap_rows.append({**context, "attribute": attribute, **gaps})
    groups = pd.concat(group_rows, ignore_index=True)
    leading = ["classifier", "test_set", "threshold"]
    return groups[leading + [c for c in groups.columns if c not in leading]], pd.DataFrame(gap_rows)


def metrics_json(groups: pd.DataFrame, gaps: pd.DataFrame) -> dict:
    """classifier -> test set -> {threshold, n, positives, auc, ..., <gap>_<attribute short name>}."""
    metrics: dict = {}
    for row in groups[groups["attribute"] == OVERALL].itertuples(index=False):
        entry = {"threshold": row.threshold, **{k: getattr(row, k) for k in OVERALL_METRICS}}
        metrics.setdefault(row.classifier, {})[row.test_set] = entry
    for row in gaps.to_dict("records"):
        short = SUBGROUP_ATTRIBUTES[row["attribute"]]
        for name in GAP_NAMES:
            metrics[row["classifier"]][row["test_set"]][f"{name}_{short}"] = row[name]
    return {c: {t: {k: _json_value(v) for k, v in m.items()} for t, m in s.items()} for c, s in metrics.items()}


def _json_value(value):
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and math.isnan(value) else value


def export_isic(table: pd.DataFrame, folder: Path) -> list[Path]:
    """isic/<test_set>/ground_truth.csv and isic/<test_set>/<classifier>.csv for each scored pair."""
    written = []
    for test_set, rows in table.groupby("test_set", sort=True):
        written.append(write_isic_csv(isic_ground_truth_frame(rows), folder / test_set / "ground_truth.csv"))
        for classifier, own in rows.groupby("classifier", sort=True):
            written.append(write_isic_csv(isic_prediction_frame(own), folder / test_set / f"{classifier}.csv"))
    return written


def draw_plots(table: pd.DataFrame, groups: pd.DataFrame, classifiers: list[str], test_sets: list[str],
               thresholds: dict[str, ThresholdChoice], params: FairnessParams, folder: Path) -> list[Path]:
    plots = []
    for test_set in test_sets:
        rows = table[table["test_set"] == test_set]
        here = [c for c in classifiers if c in set(rows["classifier"])]
        for attribute in params.plot_subgroups:
            chosen = groups[(groups["test_set"] == test_set) & (groups["attribute"] == attribute)]
            order = group_order(attribute, list(chosen["group"]), params.age_band_edges)
            plots.append(plot_group_bars(chosen, here, order, f"{test_set_name(test_set)}: by {attribute}",
                                         folder / f"{test_set}__{attribute}.png"))
        plots.append(plot_roc_by_skin_tone(rows, here, {c: thresholds[c].threshold for c in here},
                                           f"{test_set_name(test_set)}: ROC per skin-tone group",
                                           folder / f"{test_set}__roc_skin_tone.png"))
    return plots


def experiment_blocks(experiment: dict, plots: list[Path], root: Path) -> list:
    """The report's first section: the headline and, per test set, the arms side by side with paired CIs."""
    if not experiment:
        return []
    blocks = [Heading("The experiment: does synthetic data make the classifier fairer?", 1),
              Paragraph(experiment["headline"]),
              Table(experiment_table(experiment, next(iter(experiment["test_sets"])))),
              Paragraph(f"Arms: {experiment['arms']}. Values are means over {experiment['seeds']} seeds at each "
                        f"seed's validation threshold; CIs: {experiment['bootstrap_samples']} paired bootstrap "
                        "resamples of images (stratified by label within the group) and seeds. docs/experiment.md "
                        "describes the design.")]
    for test_set in list(experiment["test_sets"])[1:]:
        blocks += [Heading(test_set_name(test_set), 3), Table(experiment_table(experiment, test_set))]
    blocks += [Image(p.relative_to(root).as_posix(), p.stem) for p in plots]
    return blocks


def report_blocks(groups: pd.DataFrame, gaps: pd.DataFrame, classifiers: list[str], test_sets: list[str],
                  skipped: list[str], thresholds: dict[str, ThresholdChoice], params: FairnessParams,
                  plots: list[Path], check: tuple[bool, dict], root: Path) -> list:
    passed, details = check
    derived = {f"{base}_{group}" for base in params.split_by_skin_tone for group in SKIN_TONE_GROUPS}
    parents = [t for t in test_sets if t not in derived]  # a per-skin-tone subset has no skin-tone gap
    rule = rule_text(params.threshold_rule, params.fixed_threshold, params.target_specificity)
    blocks = [
        Heading("Fairness report", 1),
        Paragraph(f"Classifiers: {', '.join(classifiers)}. Decision threshold per classifier, chosen on its "
                  f"validation predictions ({rule}): "
                  + "; ".join(f"{c} {t.threshold:.4f} ({t.note})" for c, t in thresholds.items()) + "."),
        Heading("Accuracy, AUC and sensitivity per test set (Table III layout)"),
        Table(table_iii(groups, test_sets, classifiers)),
        Paragraph("Skipped test sets: " + (", ".join(f"{t} ({SKIPPED})" for t in skipped) if skipped else "none")),
        Heading(f"Fairness check ({'passed' if passed else 'FAILED'})"),
        Paragraph(f"{details['classifier']}: limits {details['limits']} across {details['attribute']}. "
                  + ("Failures: " + "; ".join(details["failures"]) if details["failures"] else "No failures.")
                  + (" Not measurable: " + "; ".join(details["unmeasurable"]) if details["unmeasurable"] else "")),
        Heading("Gaps across skin-tone groups (95 % bootstrap CI)"),
        Paragraph(f"Groups compared: known groups with at least {params.min_group_size} images and the metric "
                  f"defined. CIs: {params.bootstrap_samples} resamples within each group, stratified by label, "
                  f"seed {params.seed}; a max-min gap is biased upwards, so its interval may lie above the point."),
    ]
    for gap, name in (("sensitivity_gap", "Equal-opportunity difference (sensitivity gap)"),
                      ("auc_gap", "AUC gap (max - min)"), ("equalized_odds", "Equalized-odds difference"),
                      ("demographic_parity", "Demographic-parity difference")):
        blocks += [Heading(name, 3), Table(gap_table(gaps, parents, classifiers, "skin_tone_group", gap))]
    for test_set in test_sets:
        blocks += [Heading(f"{test_set_name(test_set)} ({test_set})"), Heading("gaps per attribute", 3),
                   Table(attribute_gap_table(gaps, test_set, classifiers))]
        for attribute in params.subgroups:
            chosen = groups[(groups["test_set"] == test_set) & (groups["attribute"] == attribute)]
            order = group_order(attribute, list(chosen["group"]), params.age_band_edges)
            blocks += [Heading(f"by {attribute}", 3), Table(group_table(groups, test_set, attribute, order,
                                                                        classifiers))]
        blocks += [Image(p.relative_to(root).as_posix(), p.stem) for p in plots if p.stem.startswith(f"{test_set}__")]
    return blocks


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as temp:
        frame.to_csv(temp, index=False)
