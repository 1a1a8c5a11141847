"""The `diffusion_classifier_report` stage: the trained conditional DiT as a classifier (METHOD.md §6; issue 7).

1. Tune the vote on the validation latents (tuning.py), or take the configured one.
2. Classify the validation and test latents with it (early stop as configured), and, with `external_sets`,
   every external test set (external.py: its images encoded with the pipeline's codec): the fairness
   predictions tables (score = vote share of malignant; test_set isic_test or the external set's name), and a
   votes table with the uncertainty and cost per image.
3. One full vote on the test latents (no early stop, `max_trials_for_figures` trials): paper Fig. 2
   (accuracy/F1 vs N, majority vs averaging), Fig. 3 (accuracy on the retained set vs fraction of most
   uncertain removed), Fig. 9 (confidence of TP/TN/FP/FN).
4. A counterfactual gallery of malignant and benign test cases (Fig. 4 layout), decoded with the codec.
5. metrics.json: accuracy, AUC, sensitivity, specificity scored by the fairness report's own functions at
   the threshold its rule picks on the validation predictions, with the cost (network evaluations and
   images/s) and the tuned vote; per test set (ISIC and external) the same metrics and the subgroup gaps,
   with the per-group rows in groups.parquet (scoring.py).
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
    classify_latents,
    confidence_by_outcome,
    retention_curve,
)
from training.diffusion_classifier.counterfactual import Decode
from training.diffusion_classifier.denoiser import Denoiser
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
    votes: Path  # per image: votes, vote share, entropy, trials used, network evaluations (every set)
    full_vote: Path  # per test image, the full vote behind the figures
    metrics: Path  # DVC metrics
    groups: Path  # per test set x attribute x group metrics with CIs (the fairness report's groups layout)
    tuning: Path  # per-t trial accuracy, accuracy vs N on validation, the chosen vote
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
    figures_vote = full_vote(vote, n_trials=params.max_trials_for_figures)
    full, full_seconds = _classify(model, test, figures_vote, schedule, device)

    predictions = pd.concat([prediction_rows(result, split.meta, name) for name, (split, result, _) in
                             classified.items()], ignore_index=True)
    validation_predictions = prediction_rows(validation_result, validation.meta, VALIDATION_SET)
    threshold = threshold_for(validation_predictions["label"].to_numpy(), validation_predictions["score"].to_numpy(),
                              params.threshold_rule, params.fixed_threshold)
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
    write_parquet(pd.concat([*(vote_rows(result, split.meta, name) for name, (split, result, _) in classified.items()),
                             vote_rows(validation_result, validation.meta, VALIDATION_SET)], ignore_index=True),
                  paths["votes"])
    write_parquet(vote_rows(full, test.meta, TEST_SET), paths["full_vote"])
    curves = figures(full, test.labels, figures_vote, paths)
    gallery = write_gallery(model, test.latents, test.labels, test_result.predicted, test.keys, test.conditions,
                            test.image_ids, vote, decode, schedule, params.gallery_per_class, device,
                            paths["plots"] / "counterfactuals.png")
    write_parquet(gallery, paths["gallery"])
    write_json(finite({"chosen": tuning.summary(), "trial_accuracy_by_t": tuning.by_t,
                       "accuracy_vs_trials": tuning.ablation}), paths["tuning"])

    metrics = metrics_json(overall, threshold, test_result, seconds, tuning, full, full_seconds, test.labels,
                           validation_result, model_version, str(device), by_test_set)
    write_json(metrics, paths["metrics"])
    summary = {**{k: metrics[k] for k in ("accuracy", "auc", "sensitivity", "specificity", "threshold",
                                           "mean_network_evals", "images_per_s", "t_range", "n_trials")},
               "test_images": int((predictions["test_set"] == TEST_SET).sum()),
               "validation_images": len(validation_predictions),
               "test_sets": {name: len(split.meta) for name, (split, _, _) in classified.items()},
               "auc_by_test_set": {name: m.get("auc") for name, m in metrics["test_sets"].items()},
               "gallery_rows": len(gallery), "model_version": model_version,
               "plots": sorted(p.name for p in paths["plots"].glob("*.png")), **curves}
    log.info("diffusion classifier report: accuracy %s, AUC %s on %d test latents, %.1f network evaluations "
             "per image, %.2f images/s; %d external set(s)", metrics["accuracy"], metrics["auc"],
             summary["test_images"], metrics["mean_network_evals"], metrics["images_per_s"], len(external))
    return DiffusionClassifierReportOutputs(summary=summary, **paths)


def figures(full: DiffusionClassification, labels: torch.Tensor, vote: DiffusionClassifierParams,
            paths: dict[str, Path]) -> dict:
    """Figs. 2, 3 and 9 from the full vote, with their tables as CSV (DVC plots)."""
    plots = paths["plots"]
    ablation = accuracy_vs_trials(full.errors, labels, vote.classes, trial_counts(vote.n_trials))
    correct = full.predicted == labels
    retention = retention_curve(correct, full.vote_entropy)  # paper Fig. 3: entropy of the votes
    outcomes = confidence_by_outcome(full.predicted, labels, full.vote_share, positive=MALIGNANT)
    plot_accuracy_vs_trials(ablation, plots / "accuracy_vs_trials.png")
    plot_retention_curve(retention, plots / "retention.png")
    plot_confidence_by_outcome(outcomes, plots / "confidence.png")
    for rows, name in ((ablation, "accuracy_vs_trials"), (retention, "retention")):
        with atomic_path(paths[name]) as temp:
            pd.DataFrame(rows).to_csv(temp, index=False)
    return {"full_vote_accuracy_by_n": {str(r["n_trials"]): r["majority_accuracy"] for r in ablation}}
