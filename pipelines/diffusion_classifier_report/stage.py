"""The `diffusion_classifier_report` stage: the trained conditional DiT as a classifier (METHOD.md §6; issues 7, 15).

1. Tune the vote on the validation latents only (tuning.py; tuning_target "auc": the t window, the trial count N
   and the score, from full votes of several trial seeds), or take the configured one.
2. Classify the validation and test latents with it, and, with `external_sets`, every external test set
   (external.py: its images encoded with the pipeline's codec): the fairness predictions tables (score = the
   tuned score in [0, 1], training/diffusion_classifier/decision.py; test_set isic_test or the external set's
   name), and a votes table with the score, the reweighted decision, its confidence/uncertainty and the cost.
3. The decision: score >= the threshold its rule picks on the validation predictions (the reweighted vote; the
   plain majority gives every image one class on imbalanced data).
4. One full vote on the test latents (no early stop, `max_trials_for_figures` trials over the whole search
   range): paper Fig. 2 (accuracy/F1 vs N, majority vs averaging; AUC vs N, vote share vs error gap) and the
   reference the report's vote is compared with (paired over images). Fig. 3 (accuracy and balanced accuracy on
   the retained set vs fraction of most uncertain removed) and Fig. 9 (confidence of TP/TN/FP/FN) from the
   report's own vote and decision.
5. A counterfactual gallery of malignant and benign test cases (Fig. 4 layout), decoded with the codec.
6. metrics.json: accuracy, AUC, sensitivity, specificity scored by the fairness report's own functions at
   the validation threshold, with the cost (network evaluations and images/s), the tuned vote and its
   validation evidence, the decision rule; per test set (ISIC and external) the same metrics and the subgroup
   gaps, with the per-group rows (skin tone, sex, age, site, source) in groups.parquet (scoring.py).
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from pipelines.atomic_files import atomic_path, write_json, write_parquet
from pipelines.diffusion_classifier_report.gallery import write_gallery
from pipelines.diffusion_classifier_report.metrics import TEST_SET, VALIDATION_SET, finite, metrics_json, vote_cost
from pipelines.diffusion_classifier_report.params import MALIGNANT, DiffusionClassifierReportParams
from pipelines.diffusion_classifier_report.rows import CLASSIFIER, prediction_rows, vote_rows
from pipelines.diffusion_classifier_report.scoring import fairness_settings, score_test_sets
from pipelines.diffusion_classifier_report.splits import LatentSplit, load_split
from pipelines.diffusion_classifier_report.tuning import full_vote, trial_counts, tune_vote
from pipelines.fairness.metrics import BootstrapSettings, score_overall
from pipelines.fairness.threshold import threshold_for
from pipelines.trained_models import TrainedRun, open_codec_of
from training.diffusion.schedule import DiffusionSchedule
from training.diffusion_classifier import (
    DiffusionClassification,
    DiffusionClassifierParams,
    accuracy_vs_trials,
    auc_vs_trials,
    classify_latents,
    confidence_by_outcome,
    retention_curve,
)
from training.diffusion_classifier.comparison import paired_auc_bootstrap
from training.diffusion_classifier.counterfactual import Decode
from training.diffusion_classifier.decision import (
    SCORES,
    Decision,
    ScoreRule,
    decision_rule_text,
    raw_score,
    reweighted_decision,
)
from training.diffusion_classifier.denoiser import Denoiser
from training.diffusion_classifier.evaluation import ranking_auc
from training.diffusion_classifier.plots import (
    plot_accuracy_vs_trials,
    plot_confidence_by_outcome,
    plot_retention_curve,
)
from training.vae import best_device

__all__ = ["DiffusionClassifierReportOutputs", "LatentSplit", "build_report", "load_split", "output_paths",
           "run_diffusion_classifier_report"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DiffusionClassifierReportOutputs:
    predictions: Path  # fairness predictions table: isic_test and every classified external set
    validation_predictions: Path  # the same for isic_val (the threshold)
    votes: Path  # per image: votes, score, decision, confidence, trials used, network evaluations (every set)
    full_vote: Path  # per test image, the full vote behind the figures
    metrics: Path  # DVC metrics
    groups: Path  # per test set x attribute x group metrics with CIs (the fairness report's groups layout)
    tuning: Path  # the chosen vote and its validation evidence (per-t and per-N tables, seeds, candidates)
    accuracy_vs_trials: Path  # Fig. 2 table (DVC plot)
    retention: Path  # Fig. 3 table (DVC plot)
    plots: Path  # folder: accuracy_vs_trials.png, retention.png, confidence.png, counterfactuals.png
    gallery: Path  # the gallery's rows (image, classes, mean heat)
    summary: dict


def output_paths(out_dir: Path) -> dict[str, Path]:
    out = Path(out_dir)
    return {"predictions": out / "predictions.parquet",
            "validation_predictions": out / "validation_predictions.parquet",
            "votes": out / "votes.parquet", "full_vote": out / "full_vote.parquet", "metrics": out / "metrics.json",
            "groups": out / "groups.parquet", "tuning": out / "tuning.json",
            "accuracy_vs_trials": out / "accuracy_vs_trials.csv", "retention": out / "retention.csv",
            "plots": out / "plots", "gallery": out / "gallery.parquet"}


def load_external(external_sets: Path | None, data_root: Path | None, codec, vae_dir: Path,
                  condition_names: list[str], params: DiffusionClassifierReportParams
                  ) -> tuple[dict[str, LatentSplit], str]:
    """(external test set -> its split encoded with `codec`, a note on what was classified and why)."""
    from pipelines.diffusion_classifier_report.external import load_external_splits
    from training.vae import CodecSpec

    if not params.external_sets:
        return {}, "off (params external_sets: false)"
    if external_sets is None or not Path(external_sets).is_file():
        return {}, f"none: the external-sets table {external_sets} is not present"
    if len(pd.read_parquet(external_sets, columns=["dataset"])) == 0:
        return {}, f"none: the external-sets table {external_sets} has no rows"
    if data_root is None:
        raise ValueError(f"diffusion_classifier_report: external sets {external_sets} given without data_root; "
                         "expected the data root their image_path values are relative to")
    resolution = CodecSpec.read(Path(vae_dir) / "codec.json").resolution
    splits = load_external_splits(Path(external_sets), Path(data_root), codec, resolution, condition_names,
                                  params.max_external_images)
    return splits, f"{len(splits)} set(s) from {external_sets}"


def run_diffusion_classifier_report(run_dir: Path, shards_dir: Path, lesions_path: Path, vae_dir: Path,
                                    out_dir: Path, params: DiffusionClassifierReportParams,
                                    external_sets: Path | None = None, data_root: Path | None = None
                                    ) -> DiffusionClassifierReportOutputs:
    """The stage: the EMA DiT of `run_dir`, the val/test latent shards, the lesions table, the codec, and the
    external-sets table (image_path relative to `data_root`; None or absent: only the ISIC test split)."""
    device = best_device(params.device)
    model, version = TrainedRun(Path(run_dir)).dit_ema()
    model.to(device)
    codec = open_codec_of(Path(vae_dir), str(device))
    lesions = pd.read_parquet(lesions_path)
    # the model's other conditions (skin tone, sex) are given as they are; only the label is varied
    names = [name for name in model.config.conditions if name != params.classifier.condition]
    validation = load_split(Path(shards_dir), "val", lesions, names)
    test = load_split(Path(shards_dir), "test", lesions, names, params.max_test_images)
    started = time.perf_counter()
    external, note = load_external(external_sets, data_root, codec, Path(vae_dir), names, params)
    encode_seconds = time.perf_counter() - started
    outputs = build_report(model, version, validation, test, codec.decode, Path(out_dir), params, device,
                           external=external)
    outputs.summary.update(external_sets_note=note, external_encode_seconds=round(encode_seconds, 3))
    return outputs


def _classify(model: Denoiser, split: LatentSplit, vote: DiffusionClassifierParams, schedule: DiffusionSchedule,
              device: torch.device) -> tuple[DiffusionClassification, float]:
    started = time.perf_counter()
    result = classify_latents(model, split.latents, vote, schedule, conditions=split.conditions,
                              image_ids=split.image_ids, device=device)
    return result, time.perf_counter() - started


def build_report(model: Denoiser, model_version: str, validation: LatentSplit, test: LatentSplit, decode: Decode,
                 out_dir: Path, params: DiffusionClassifierReportParams, device: torch.device | str = "cpu",
                 external: dict[str, LatentSplit] | None = None) -> DiffusionClassifierReportOutputs:
    """Everything after loading: the model, the splits (`external`: test set name -> split) and the decode."""
    device, schedule, paths = torch.device(device), DiffusionSchedule(), output_paths(out_dir)
    external = external or {}
    clash = sorted({TEST_SET, VALIDATION_SET} & set(external))
    if clash:
        raise ValueError(f"external test set(s) {clash} share a name with an ISIC split; expected other names")
    for name, split in external.items():
        if split.latents.shape[1:] != test.latents.shape[1:]:
            raise ValueError(f"external set {name!r}: latents {tuple(split.latents.shape[1:])}, but the test shards "
                             f"hold {tuple(test.latents.shape[1:])}; expected the codec the shards were encoded with")
    tuning = tune_vote(model, validation.latents, validation.labels, validation.conditions, validation.image_ids,
                       params, schedule, device)
    vote = tuning.classifier
    validation_result, _ = _classify(model, validation, vote, schedule, device)
    classified = {TEST_SET: (test, *_classify(model, test, vote, schedule, device))}
    classified |= {name: (split, *_classify(model, split, vote, schedule, device)) for name, split in external.items()}
    test_result, seconds = classified[TEST_SET][1:]
    # the reference and the figures: every trial of max_trials_for_figures over the whole search range
    figures_vote = full_vote(params.classifier, n_trials=params.max_trials_for_figures)
    full, full_seconds = _classify(model, test, figures_vote, schedule, device)

    rule = ScoreRule.fit(tuning.score, validation_result)
    scores = {name: rule(result) for name, (_, result, _) in classified.items()}
    predictions = pd.concat([prediction_rows(scores[name], split.meta, name) for name, (split, _, _) in
                             classified.items()], ignore_index=True)
    validation_score = rule(validation_result)
    validation_predictions = prediction_rows(validation_score, validation.meta, VALIDATION_SET)
    threshold = threshold_for(validation_predictions["label"].to_numpy(), validation_predictions["score"].to_numpy(),
                              params.threshold_rule, params.fixed_threshold, params.target_specificity)
    decisions = {name: reweighted_decision(score, threshold.threshold) for name, score in scores.items()}
    validation_decision = reweighted_decision(validation_score, threshold.threshold)
    overall = score_overall(predictions[predictions["test_set"] == TEST_SET], threshold.threshold,
                            key=f"{CLASSIFIER}|{TEST_SET}",
                            bootstrap=BootstrapSettings(samples=params.bootstrap_samples, seed=params.seed))
    groups, by_test_set = score_test_sets(predictions, threshold, fairness_settings(params))
    for name, (split, result, spent) in classified.items():
        by_test_set[name] |= vote_cost(result, split.labels, spent)

    shutil.rmtree(paths["plots"], ignore_errors=True)  # an earlier run's figures must not linger
    write_parquet(predictions, paths["predictions"])
    write_parquet(validation_predictions, paths["validation_predictions"])
    write_parquet(groups, paths["groups"])
    write_parquet(pd.concat([*(vote_rows(result, split.meta, name, decisions[name], scores[name])
                               for name, (split, result, _) in classified.items()),
                             vote_rows(validation_result, validation.meta, VALIDATION_SET, validation_decision,
                                       validation_score)], ignore_index=True),
                  paths["votes"])
    write_parquet(vote_rows(full, test.meta, TEST_SET), paths["full_vote"])
    curves = figures(full, test.labels, figures_vote, decisions[TEST_SET], paths)
    gallery = write_gallery(model, test.latents, test.labels, torch.as_tensor(decisions[TEST_SET].positive),
                            test.keys, test.conditions, test.image_ids, vote, decode, schedule,
                            params.gallery_per_class, device, paths["plots"] / "counterfactuals.png",
                            score=torch.as_tensor(scores[TEST_SET]))
    write_parquet(gallery, paths["gallery"])
    by_t_key = "auc_by_t" if tuning.target == "auc" else "trial_accuracy_by_t"
    ablation_key = "auc_vs_trials" if tuning.target == "auc" else "accuracy_vs_trials"
    write_json(finite({"chosen": tuning.summary(), by_t_key: tuning.by_t, ablation_key: tuning.ablation,
                       **({"evidence": tuning.evidence} if tuning.evidence else {})}), paths["tuning"])

    reference = {"t_range": list(figures_vote.t_range),
                 **reference_comparison(full, test_result, test.labels, rule, params.bootstrap_samples, params.seed)}
    decision = {"score": rule.score, "score_scale": rule.scale,
                "rule": decision_rule_text(rule.score, threshold.threshold),
                "validation_accuracy": float((validation_decision.positive == validation.labels.numpy()).mean())
                if len(validation.labels) else float("nan")}
    metrics = metrics_json(overall, threshold, test_result, seconds, tuning, full, full_seconds, test.labels,
                           validation_result, model_version, str(device), by_test_set, decision, reference)
    write_json(metrics, paths["metrics"])
    summary = {**{k: metrics[k] for k in ("accuracy", "auc", "sensitivity", "specificity", "threshold",
                                           "mean_network_evals", "images_per_s", "t_range", "n_trials", "score")},
               "test_images": int((predictions["test_set"] == TEST_SET).sum()),
               "validation_images": len(validation_predictions),
               "test_sets": {name: len(split.meta) for name, (split, _, _) in classified.items()},
               "auc_by_test_set": {name: m.get("auc") for name, m in metrics["test_sets"].items()},
               "gallery_rows": len(gallery), "model_version": model_version,
               "plots": sorted(p.name for p in paths["plots"].glob("*.png")), **curves}
    log.info("diffusion classifier report: %s, accuracy %s, AUC %s on %d test latents, %.1f network evaluations "
             "per image, %.2f images/s; %d external set(s)", rule.score, metrics["accuracy"], metrics["auc"],
             summary["test_images"], metrics["mean_network_evals"], metrics["images_per_s"], len(external))
    return DiffusionClassifierReportOutputs(summary=summary, **paths)


def reference_comparison(full: DiffusionClassification, report: DiffusionClassification, labels: torch.Tensor,
                         rule: ScoreRule, resamples: int, seed: int) -> dict:
    """The full vote's test AUC under both scores, and the report's vote minus the full vote under the report's
    score, paired over the same images (image bootstrap; one trial seed: the benchmark resamples seeds too)."""
    classes = full.classes
    aucs = {f"{score}_auc": ranking_auc(labels, classes, raw_score(full, score)) for score in SCORES}
    paired = paired_auc_bootstrap(labels == classes[-1], raw_score(report, rule.score).numpy()[None],
                                  raw_score(full, rule.score).numpy()[None], resamples=max(resamples, 2), seed=seed)
    return {**aucs, "report_auc_minus_full_vote": paired["point"], "difference_se": paired["se"],
            "difference_low": paired["low"], "difference_high": paired["high"]}


def figures(full: DiffusionClassification, labels: torch.Tensor, vote: DiffusionClassifierParams,
            decision: Decision, paths: dict[str, Path]) -> dict:
    """Fig. 2 from the full vote (accuracy/F1 of majority and average, AUC of vote share and error gap, vs N);
    Figs. 3 and 9 from the report's own vote on the test split (its reweighted decision, confidence and
    uncertainty); their tables as CSV (DVC plots)."""
    plots = paths["plots"]
    counts = trial_counts(vote.n_trials)
    ablation = accuracy_vs_trials(full.errors, labels, vote.classes, counts)
    ranking = auc_vs_trials(full.errors, full.timesteps, labels, vote.classes, counts)
    ablation = [a | {k: r[k] for k in ("vote_share_auc", "error_gap_auc")} for a, r in zip(ablation, ranking,
                                                                                          strict=True)]
    positive = torch.as_tensor(decision.positive)
    truth = (labels == MALIGNANT).long()
    retention = retention_curve(positive == truth, torch.as_tensor(decision.uncertainty_bits), labels=truth)
    outcomes = confidence_by_outcome(positive, truth, torch.as_tensor(decision.confidence), positive=1)
    plot_accuracy_vs_trials(ablation, plots / "accuracy_vs_trials.png")
    plot_retention_curve(retention, plots / "retention.png")
    plot_confidence_by_outcome(outcomes, plots / "confidence.png", ylabel="confidence of the decision")
    for rows, name in ((ablation, "accuracy_vs_trials"), (retention, "retention")):
        with atomic_path(paths[name]) as temp:
            pd.DataFrame(rows).to_csv(temp, index=False)
    return {"full_vote_accuracy_by_n": {str(r["n_trials"]): r["majority_accuracy"] for r in ablation},
            "full_vote_auc_by_n": {str(r["n_trials"]): r["vote_share_auc"] for r in ablation}}
