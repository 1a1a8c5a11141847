"""The `diffusion_classifier_report` stage: the trained conditional DiT as a classifier (METHOD.md §6; issue 7).

1. Tune the vote on the validation latents (tuning.py), or take the configured one.
2. Classify the validation and test latents with it (early stop as configured): the fairness predictions
   tables (score = vote share of malignant), and a votes table with the uncertainty and cost per image.
3. One full vote on the test latents (no early stop, `max_trials_for_figures` trials): paper Fig. 2
   (accuracy/F1 vs N, majority vs averaging), Fig. 3 (accuracy on the retained set vs fraction of most
   uncertain removed), Fig. 9 (confidence of TP/TN/FP/FN).
4. A counterfactual gallery of malignant and benign test cases (Fig. 4 layout), decoded with the codec.
5. metrics.json: accuracy, AUC, sensitivity, specificity scored by the fairness report's own functions at
   the threshold its rule picks on the validation predictions, with the cost (network evaluations and
   images/s) and the tuned vote.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from pipelines.atomic_files import atomic_path, write_json, write_parquet
from pipelines.diffusion_classifier_report.gallery import write_gallery
from pipelines.diffusion_classifier_report.params import MALIGNANT, DiffusionClassifierReportParams
from pipelines.diffusion_classifier_report.rows import CLASSIFIER, lesion_rows, prediction_rows, vote_rows
from pipelines.diffusion_classifier_report.tuning import Tuning, full_vote, trial_counts, tune_vote
from pipelines.fairness.metrics import BootstrapSettings, score_overall
from pipelines.fairness.threshold import ThresholdChoice, threshold_for
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

log = logging.getLogger(__name__)
TEST_SET, VALIDATION_SET = "isic_test", "isic_val"
PAPER_NETWORK_EVALS = 1002  # 501 trials x 2 classes per image (paper, Table 1 caption and Section 3)


@dataclass(frozen=True)
class DiffusionClassifierReportOutputs:
    predictions: Path  # fairness predictions table, test_set isic_test
    validation_predictions: Path  # the same for isic_val (the threshold)
    votes: Path  # per image: votes, vote share, entropy, trials used, network evaluations (both splits)
    full_vote: Path  # per test image, the full vote behind the figures
    metrics: Path  # DVC metrics
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
            "tuning": out / "tuning.json", "accuracy_vs_trials": out / "accuracy_vs_trials.csv",
            "retention": out / "retention.csv", "plots": out / "plots", "gallery": out / "gallery.parquet"}


@dataclass(frozen=True)
class LatentSplit:
    """One split's latents with what the report needs beside them."""

    meta: pd.DataFrame  # lesions-table rows, in latent order
    latents: torch.Tensor  # (n, C, H, W)
    labels: torch.Tensor  # (n,) 0 benign / 1 malignant, from the lesions table
    conditions: dict[str, torch.Tensor]  # the model's other condition tokens (skin_tone, sex), unchanged per class
    image_ids: list[int]  # seeds of each latent's trials: crc32 of its isic_id, so a cap or order changes nothing

    @property
    def keys(self) -> list[str]:
        return list(self.meta["isic_id"])


def load_split(shards_dir: Path, split: str, lesions: pd.DataFrame, condition_names: list[str],
               cap: int | None = None) -> LatentSplit:
    """The latents of `split` (the first `cap` in manifest order when capped) joined to the lesions table."""
    from training.latent_shards.manifest import shard_paths
    from training.latent_shards.read import read_latent_set

    latent_set = read_latent_set(shard_paths(shards_dir, split))
    if cap is not None and cap < len(latent_set):
        latent_set = latent_set.subset(torch.arange(cap))
    meta = lesion_rows(lesions, latent_set.keys, f"{shards_dir} split {split!r}")
    return LatentSplit(meta=meta, latents=latent_set.mean, labels=torch.tensor(meta["label"].astype(int).to_numpy()),
                       conditions={name: latent_set.conditions[name] for name in condition_names},
                       image_ids=[zlib.crc32(key.encode()) for key in latent_set.keys])


def run_diffusion_classifier_report(run_dir: Path, shards_dir: Path, lesions_path: Path, vae_dir: Path,
                                    out_dir: Path, params: DiffusionClassifierReportParams
                                    ) -> DiffusionClassifierReportOutputs:
    """The stage: the EMA DiT of `run_dir`, the val/test latent shards, the lesions table, the codec."""
    device = best_device(params.device)
    model, version = TrainedRun(Path(run_dir)).dit_ema()
    model.to(device)
    codec = open_codec_of(Path(vae_dir), str(device))
    lesions = pd.read_parquet(lesions_path)
    # the model's other conditions (skin tone, sex) are given as they are; only the label is varied
    names = [name for name in model.config.conditions if name != params.classifier.condition]
    validation = load_split(Path(shards_dir), "val", lesions, names)
    test = load_split(Path(shards_dir), "test", lesions, names, params.max_test_images)
    return build_report(model, version, validation, test, codec.decode, Path(out_dir), params, device)


def _classify(model: Denoiser, split: LatentSplit, vote: DiffusionClassifierParams, schedule: DiffusionSchedule,
              device: torch.device) -> tuple[DiffusionClassification, float]:
    started = time.perf_counter()
    result = classify_latents(model, split.latents, vote, schedule, conditions=split.conditions,
                              image_ids=split.image_ids, device=device)
    return result, time.perf_counter() - started


def build_report(model: Denoiser, model_version: str, validation: LatentSplit, test: LatentSplit, decode: Decode,
                 out_dir: Path, params: DiffusionClassifierReportParams, device: torch.device | str = "cpu"
                 ) -> DiffusionClassifierReportOutputs:
    """Everything after loading: the model, the two splits and the codec's decode are given."""
    device, schedule, paths = torch.device(device), DiffusionSchedule(), output_paths(out_dir)
    tuning = tune_vote(model, validation.latents, validation.labels, validation.conditions, validation.image_ids,
                       params, schedule, device)
    vote = tuning.classifier
    validation_result, _ = _classify(model, validation, vote, schedule, device)
    test_result, seconds = _classify(model, test, vote, schedule, device)
    figures_vote = full_vote(vote, n_trials=params.max_trials_for_figures)
    full, full_seconds = _classify(model, test, figures_vote, schedule, device)

    predictions = prediction_rows(test_result, test.meta, TEST_SET)
    validation_predictions = prediction_rows(validation_result, validation.meta, VALIDATION_SET)
    threshold = threshold_for(validation_predictions["label"].to_numpy(), validation_predictions["score"].to_numpy(),
                              params.threshold_rule, params.fixed_threshold)
    overall = score_overall(predictions, threshold.threshold, key=f"{CLASSIFIER}|{TEST_SET}",
                            bootstrap=BootstrapSettings(samples=params.bootstrap_samples, seed=params.seed))

    shutil.rmtree(paths["plots"], ignore_errors=True)  # an earlier run's figures must not linger
    write_parquet(predictions, paths["predictions"])
    write_parquet(validation_predictions, paths["validation_predictions"])
    write_parquet(pd.concat([vote_rows(test_result, test.meta, TEST_SET),
                             vote_rows(validation_result, validation.meta, VALIDATION_SET)], ignore_index=True),
                  paths["votes"])
    write_parquet(vote_rows(full, test.meta, TEST_SET), paths["full_vote"])
    curves = figures(full, test.labels, figures_vote, paths)
    gallery = write_gallery(model, test.latents, test.labels, test_result.predicted, test.keys, test.conditions,
                            test.image_ids, vote, decode, schedule, params.gallery_per_class, device,
                            paths["plots"] / "counterfactuals.png")
    write_parquet(gallery, paths["gallery"])
    write_json(_finite({"chosen": tuning.summary(), "trial_accuracy_by_t": tuning.by_t,
                        "accuracy_vs_trials": tuning.ablation}), paths["tuning"])

    metrics = metrics_json(overall, threshold, test_result, seconds, tuning, full, full_seconds, test.labels,
                           validation_result, model_version, str(device))
    write_json(metrics, paths["metrics"])
    summary = {**{k: metrics[k] for k in ("accuracy", "auc", "sensitivity", "specificity", "threshold",
                                           "mean_network_evals", "images_per_s", "t_range", "n_trials")},
               "test_images": len(predictions), "validation_images": len(validation_predictions),
               "gallery_rows": len(gallery), "model_version": model_version,
               "plots": sorted(p.name for p in paths["plots"].glob("*.png")), **curves}
    log.info("diffusion classifier report: accuracy %s, AUC %s on %d test latents, %.1f network evaluations "
             "per image, %.2f images/s", metrics["accuracy"], metrics["auc"], len(predictions),
             metrics["mean_network_evals"], metrics["images_per_s"])
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


def _finite(value: object) -> object:
    """NaN -> None, recursively (JSON has no NaN; DVC metrics need valid JSON)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def metrics_json(overall: dict, threshold: ThresholdChoice, result: DiffusionClassification, seconds: float,
                 tuning: Tuning, full: DiffusionClassification, full_seconds: float, labels: torch.Tensor,
                 validation: DiffusionClassification, model_version: str, device: str) -> dict:
    """Test metrics (the fairness report's functions, at the validation threshold), cost, and the vote."""
    n = int(result.predicted.numel())
    evals = float(result.network_evals.double().mean()) if n else float("nan")
    metrics = {
        "classifier": CLASSIFIER, "test_set": TEST_SET, "model_version": model_version, "device": device,
        **{k: overall[k] for k in ("n", "positives", "accuracy", "auc", "sensitivity", "specificity",
                                   "balanced_accuracy")},
        **{f"{k}_{end}": overall[f"{k}_{end}"] for k in ("accuracy", "auc", "sensitivity", "specificity")
           for end in ("low", "high")},
        "threshold": threshold.threshold, "threshold_rule": threshold.rule, "threshold_note": threshold.note,
        # the vote's own decision (majority, ties -> benign), threshold-free
        "vote_accuracy": float((result.predicted == labels).double().mean()) if n else float("nan"),
        "mean_trials_used": float(result.trials_used.double().mean()) if n else float("nan"),
        "mean_network_evals": evals,
        "network_eval_reduction_vs_paper": PAPER_NETWORK_EVALS / evals if n else float("nan"),
        "images_per_s": n / seconds if seconds > 0 else float("nan"),
        "seconds_per_image": seconds / n if n else float("nan"),
        "t_range": list(tuning.classifier.t_range), "n_trials": tuning.classifier.n_trials, "tuned": tuning.tuned,
        "early_stop": tuning.classifier.early_stop, "mode": tuning.classifier.mode,
        "tuning_network_evals": tuning.network_evals,
        "validation_mean_network_evals": float(validation.network_evals.double().mean()),
        "full_vote": {
            "n_trials": int(full.errors.shape[2]),
            "vote_accuracy": float((full.predicted == labels).double().mean()) if n else float("nan"),
            "agreement_with_report_vote": float((full.predicted == result.predicted).double().mean())
            if n else float("nan"),
            "mean_network_evals": float(full.network_evals.double().mean()) if n else float("nan"),
            "images_per_s": n / full_seconds if full_seconds > 0 else float("nan"),
        },
    }
    return _finite(metrics)
