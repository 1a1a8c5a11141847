"""The fairness_report stage on a small synthetic predictions table: a fair and an unfair classifier."""

from __future__ import annotations

import json
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference
from PIL import Image
from sklearn.metrics import accuracy_score, balanced_accuracy_score, recall_score, roc_auc_score

from pipelines.fairness.params import FairnessCheckParams, FairnessParams
from pipelines.fairness.predictions import ISIC_CATEGORIES, PredictionsError
from pipelines.fairness.report import fairness_check, prepare_predictions, run_fairness_report
from pipelines.fairness.tables import table_iii
from pipelines.fairness.threshold import choose_threshold

TOL = 1e-12
CLASSIFIERS = ["fair", "unfair"]
TEST_SETS = ["isic_test", "ddi", "ddi_A", "ddi_B", "ddi_C"]


def synthetic_predictions(test_set: str, n_per_tone: int, seed: int) -> pd.DataFrame:
    """Both classifiers on the same images. `unfair` scores malignant lesions on FST V-VI (group C) low,
    as a classifier trained on light skin would; `fair` separates the classes equally on every tone."""
    rng = np.random.default_rng(seed)
    tone = np.repeat(["A", "B", "C", "unknown"], [n_per_tone, n_per_tone, n_per_tone, 8])
    n = len(tone)
    label = (np.arange(n) % 2).astype(int)
    noise = rng.normal(0, 0.12, n)
    base = {"test_set": test_set, "image_id": [f"{test_set}_{i:04d}" for i in range(n)], "label": label,
            "skin_tone_group": tone, "sex": rng.choice(["male", "female", None], n),
            "age_approx": rng.choice([np.nan, 25.0, 40.0, 55.0, 70.0, 80.0], n),
            "anatom_site_general": rng.choice(["torso", "head/neck", "lower extremity"], n), "source": test_set}
    fair = np.clip(np.where(label == 1, 0.7, 0.3) + noise, 0, 1)
    unfair = np.clip(np.where(label == 1, np.where(tone == "C", 0.35, 0.72), 0.3) + noise, 0, 1)
    return pd.concat([pd.DataFrame({"classifier": "fair", "score": fair, **base}),
                      pd.DataFrame({"classifier": "unfair", "score": unfair, **base})], ignore_index=True)


PARAMS = FairnessParams(
    bootstrap_samples=200, seed=3,
    test_sets=["isic_test", "ddi", "ddi_A", "ddi_B", "ddi_C", "fitzpatrick17k"],
    check=FairnessCheckParams(classifier="fair", max_sensitivity_gap=0.2, max_auc_gap=0.15),
)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("fairness")
    predictions = pd.concat([synthetic_predictions("isic_test", 40, 1), synthetic_predictions("ddi", 30, 2)])
    validation = synthetic_predictions("isic_val", 30, 3)
    predictions.to_parquet(root / "predictions.parquet", index=False)
    validation.to_parquet(root / "validation.parquet", index=False)
    outputs = run_fairness_report(root / "predictions.parquet", root / "validation.parquet", PARAMS, root / "out")
    return outputs, predictions, validation


def test_metrics_json_equals_direct_computation(report):
    outputs, predictions, validation = report
    metrics = json.loads(outputs.metrics.read_text())
    assert sorted(metrics) == sorted(CLASSIFIERS)
    for classifier in CLASSIFIERS:
        assert sorted(metrics[classifier]) == sorted(TEST_SETS)  # write_json sorts keys
        val = validation[validation["classifier"] == classifier]
        threshold = choose_threshold(val["label"].to_numpy(), val["score"].to_numpy())
        for test_set in TEST_SETS:
            base, _, tone = test_set.partition("_") if test_set.startswith("ddi_") else (test_set, "", "")
            rows = predictions[(predictions["classifier"] == classifier) & (predictions["test_set"] == base)]
            rows = rows[rows["skin_tone_group"] == tone] if tone else rows
            y, score = rows["label"].to_numpy(), rows["score"].to_numpy()
            pred = (score >= threshold).astype(int)
            got = metrics[classifier][test_set]
            assert got["threshold"] == threshold
            assert (got["n"], got["positives"]) == (len(rows), int(y.sum()))
            assert got["auc"] == pytest.approx(roc_auc_score(y, score), abs=TOL)
            assert got["accuracy"] == pytest.approx(accuracy_score(y, pred), abs=TOL)
            assert got["sensitivity"] == pytest.approx(recall_score(y, pred), abs=TOL)
            assert got["specificity"] == pytest.approx(recall_score(y, pred, pos_label=0), abs=TOL)
            assert got["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred), abs=TOL)
            known = rows["skin_tone_group"] != "unknown"
            tones = rows.loc[known, "skin_tone_group"]
            if tones.nunique() < 2:
                assert got["sensitivity_gap_skin_tone"] is None  # one group: NaN in memory, null in JSON
                continue
            recalls = [recall_score(y[known][tones == t], pred[known][tones == t]) for t in "ABC"]
            aucs = [roc_auc_score(y[known][tones == t], score[known][tones == t]) for t in "ABC"]
            assert got["sensitivity_gap_skin_tone"] == pytest.approx(max(recalls) - min(recalls), abs=TOL)
            assert got["auc_gap_skin_tone"] == pytest.approx(max(aucs) - min(aucs), abs=TOL)
            fair_args = {"y_true": y[known], "y_pred": pred[known], "sensitive_features": tones}
            assert got["equalized_odds_skin_tone"] == pytest.approx(equalized_odds_difference(**fair_args), abs=TOL)
            assert got["demographic_parity_skin_tone"] == pytest.approx(
                demographic_parity_difference(**fair_args), abs=TOL)
    # the planted unfairness is what the metrics show
    assert metrics["unfair"]["ddi"]["sensitivity_gap_skin_tone"] > 0.5
    assert metrics["fair"]["ddi"]["sensitivity_gap_skin_tone"] < 0.1
    assert {"sensitivity_gap_sex", "auc_gap_age", "equalized_odds_site", "demographic_parity_source"} <= set(
        metrics["fair"]["isic_test"])


def test_check_passes_for_the_fair_and_fails_for_the_unfair_classifier(report):
    outputs, _, _ = report
    metrics = json.loads(outputs.metrics.read_text())
    passed, details = fairness_check(metrics, PARAMS)
    assert passed and details["failures"] == [] and sorted(details["test_sets"]) == ["ddi", "isic_test"]
    assert outputs.summary["check"]["passed"] is True
    unfair = PARAMS.model_copy(update={"check": PARAMS.check.model_copy(update={"classifier": "unfair"})})
    passed, details = fairness_check(metrics, unfair)
    assert not passed
    gap = metrics["unfair"]["ddi"]["sensitivity_gap_skin_tone"]
    assert f"unfair on ddi: sensitivity_gap across skin_tone_group = {gap:.4f} > 0.2" in details["failures"]
    missing = PARAMS.model_copy(update={"check": PARAMS.check.model_copy(update={"classifier": "joint"})})
    assert fairness_check(metrics, missing)[0] is False


def test_per_group_table(report):
    outputs, predictions, _ = report
    groups = pd.read_parquet(outputs.groups)
    as_csv = pd.read_csv(outputs.groups_csv)
    assert list(as_csv.columns) == list(groups.columns) and len(as_csv) == len(groups)
    np.testing.assert_allclose(as_csv["auc"].to_numpy(), groups["auc"].to_numpy(), rtol=0, atol=1e-15)
    # per classifier x test set: one overall row + one row per group of each attribute
    table = prepare_predictions(predictions.reset_index(drop=True).assign(sex=lambda f: f["sex"].fillna("unknown")),
                                PARAMS)
    expected = 0
    for (_, _), rows in table.groupby(["classifier", "test_set"]):
        expected += 1 + sum(rows[a].nunique() for a in PARAMS.subgroups)
    assert len(groups) == expected
    ddi_c = groups[(groups["classifier"] == "unfair") & (groups["test_set"] == "ddi")
                   & (groups["attribute"] == "skin_tone_group")].set_index("group")
    assert list(ddi_c.index) == ["A", "B", "C", "unknown"]
    assert ddi_c.loc["C", "sensitivity"] < ddi_c.loc["A", "sensitivity"] - 0.5
    assert (ddi_c["sensitivity_low"] <= ddi_c["sensitivity"]).all() and (
        ddi_c["sensitivity"] <= ddi_c["sensitivity_high"]).all()
    assert not ddi_c.loc["unknown", "in_gaps"]


def test_plots_are_valid_pngs(report):
    outputs, _, _ = report
    names = sorted(p.name for p in outputs.plots.iterdir())
    assert names == sorted([f"{t}__skin_tone_group.png" for t in TEST_SETS] + [f"{t}__roc_skin_tone.png" for t in
                                                                                 TEST_SETS])
    for path in outputs.plots.iterdir():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert image.size[0] >= 300 and image.size[1] >= 200


def _markdown_table(text: str, heading: str) -> list[list[str]]:
    """The first table after `heading`: header row, then data rows."""
    block = []
    for line in text.split(heading, 1)[1].strip().splitlines():
        if line.startswith("|"):
            block.append([cell.strip() for cell in line.strip("|").split("|")])
        elif block:
            break
    return [block[0]] + block[2:]  # drop the |:---| rule


def test_markdown_has_table_iii_shape_and_lists_the_skipped_set(report):
    outputs, _, _ = report
    text = outputs.markdown.read_text()
    table = _markdown_table(text, "## Accuracy, AUC and sensitivity per test set (Table III layout)")
    header, rows = table[0], table[1:]
    assert header == ["test set", "n (malignant)"] + [f"{c} {m}" for c in CLASSIFIERS
                                                      for m in ("accuracy", "AUC", "sensitivity")]
    assert [r[0] for r in rows] == ["ISIC test (in-domain)", "DDI all", "DDI A (FST I-II)", "DDI B (FST III-IV)",
                                    "DDI C (FST V-VI)"]
    metrics = json.loads(outputs.metrics.read_text())
    ddi = rows[1]
    assert ddi[1] == f"{metrics['fair']['ddi']['n']} ({metrics['fair']['ddi']['positives']})"
    assert ddi[2:5] == [f"{metrics['fair']['ddi'][m]:.3f}" for m in ("accuracy", "auc", "sensitivity")]
    assert "Skipped test sets: fitzpatrick17k (not configured - skipped)" in text
    assert outputs.summary["skipped_test_sets"] == {"fitzpatrick17k": "not configured - skipped"}
    assert "## Fairness check (passed)" in text
    html = outputs.html.read_text()
    assert html.count("<table") == len(re.findall(r"^\|:-", text, flags=re.M))  # same tables in both
    for src in re.findall(r'<img src="([^"]+)"', html):
        assert (outputs.html.parent / src).is_file()
    assert len(re.findall(r'<img src="', html)) == 2 * len(TEST_SETS)


def test_isic_csvs_have_the_official_layout(report):
    outputs, predictions, _ = report
    truth = pd.read_csv(outputs.isic / "ddi" / "ground_truth.csv")
    ours = pd.read_csv(outputs.isic / "ddi" / "unfair.csv")
    assert list(truth.columns) == list(ours.columns) == ["image", *ISIC_CATEGORIES]
    assert (truth.dtypes[list(ISIC_CATEGORIES)] == np.float64).all() and (ours.dtypes[1:] == np.float64).all()
    assert ours["image"].is_unique and list(ours["image"]) == list(truth["image"])
    assert ((ours[list(ISIC_CATEGORIES)] >= 0) & (ours[list(ISIC_CATEGORIES)] <= 1)).all().all()
    rows = predictions[(predictions["classifier"] == "unfair") & (predictions["test_set"] == "ddi")]
    rows = rows.set_index("image_id").loc[ours["image"]]
    np.testing.assert_array_equal(ours["malignant"].to_numpy(), rows["score"].to_numpy())  # bit-identical
    np.testing.assert_array_equal(truth["malignant"].to_numpy(), rows["label"].to_numpy().astype(float))
    assert (outputs.isic / "ddi" / "ground_truth.csv").read_text().splitlines()[1].endswith((",0.0,1.0", ",1.0,0.0"))
    assert sorted(p.name for p in (outputs.isic / "ddi_C").iterdir()) == ["fair.csv", "ground_truth.csv", "unfair.csv"]


def isic_scoring_cli() -> Path:
    """ISIC's official scorer, installed by `make scorer-env` in its own venv (it needs pandas<2.2 and
    numpy<2; this environment has pandas 3). $ISIC_SCORING overrides the path to the executable."""
    default = Path(__file__).resolve().parents[1] / ".venv-scorer" / "bin" / "isic-challenge-scoring"
    cli = Path(os.environ.get("ISIC_SCORING", default))
    if not (cli.is_file() and os.access(cli, os.X_OK)):
        pytest.fail(f"{cli}: ISIC's scorer (isic-challenge-scoring) is not installed; run `make scorer-env` "
                    "(`make test` does) or point $ISIC_SCORING at the executable", pytrace=False)
    return cli


def official_auc(cli: Path, truth: Path, prediction: Path) -> dict[str, float]:
    """Per-category AUCs from `isic-challenge-scoring -o json classification -m auc TRUTH PREDICTION`."""
    done = subprocess.run([str(cli), "-o", "json", "classification", "-m", "auc", str(truth), str(prediction)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{cli} on {prediction} exited {done.returncode}:\n{done.stderr}"
    return json.loads(done.stdout)["per_category"]["auc"]


def test_official_isic_challenge_scoring_agrees(report):
    """Every classifier x test set CSV the report exports, scored by ISIC's own tool (5.6.0, its own venv),
    gives the report's AUC: the export layout and our AUC both match the challenge's."""
    cli = isic_scoring_cli()
    outputs, _, _ = report
    metrics = json.loads(outputs.metrics.read_text())
    pairs = [(c, t) for c in CLASSIFIERS for t in TEST_SETS]
    folder = outputs.isic
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:  # each call is ~1 s of imports
        aucs = pool.map(lambda pair: official_auc(cli, folder / pair[1] / "ground_truth.csv",
                                                  folder / pair[1] / f"{pair[0]}.csv"), pairs)
        scored = dict(zip(pairs, aucs, strict=True))
    for (classifier, test_set), auc in scored.items():
        ours = metrics[classifier][test_set]["auc"]
        assert sorted(auc) == sorted(ISIC_CATEGORIES)
        # benign is the complement (1 - score, flipped labels): the same AUC
        assert auc["malignant"] == pytest.approx(ours, abs=1e-9), (classifier, test_set)
        assert auc["benign"] == pytest.approx(ours, abs=1e-9), (classifier, test_set)
    assert scored[("unfair", "ddi_C")]["malignant"] < scored[("fair", "ddi_C")]["malignant"] - 0.2


def test_derived_test_set_clash_is_an_error(report):
    _, predictions, _ = report
    clash = predictions[predictions["test_set"] == "ddi"].assign(test_set="ddi_A")
    with pytest.raises(PredictionsError, match="test_set 'ddi_A' is also derived from 'ddi'"):
        prepare_predictions(pd.concat([predictions, clash], ignore_index=True), PARAMS)


def test_missing_validation_falls_back_to_half(tmp_path: Path):
    predictions = synthetic_predictions("isic_test", 10, 4)
    predictions.to_parquet(tmp_path / "p.parquet", index=False)
    params = FairnessParams(bootstrap_samples=0, subgroups=["skin_tone_group"], test_sets=["isic_test"])
    outputs = run_fairness_report(tmp_path / "p.parquet", None, params, tmp_path / "out")
    assert outputs.summary["thresholds"]["fair"] == {"threshold": 0.5, "rule": "fallback",
                                                     "note": "no validation predictions: threshold 0.5"}
    assert outputs.summary["skipped_test_sets"] == {}
    assert json.loads(json.dumps(outputs.summary)) == outputs.summary  # JSON-able: Dagster metadata


def test_table_iii_marks_a_classifier_without_predictions(report):
    outputs, _, _ = report
    groups = pd.read_parquet(outputs.groups)
    groups = groups[~((groups["classifier"] == "unfair") & (groups["test_set"] == "isic_test"))]
    table = table_iii(groups, ["isic_test", "ddi"], CLASSIFIERS).set_index("test set")
    unfair = ["unfair accuracy", "unfair AUC", "unfair sensitivity"]
    assert list(table.loc["ISIC test (in-domain)", unfair]) == ["-"] * 3
    assert table.loc["DDI all", "unfair AUC"] != "-"
