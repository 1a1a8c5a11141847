"""Tune the vote on the validation split: which t carry the class signal, and how many trials suffice.

Two full votes (early stop off) on the validation latents, as training/diffusion_classifier/evaluation.py
describes: one over classifier.t_range gives the trial accuracy per t bin -> the informative t range;
one over that range gives accuracy vs N (prefixes of the bit-reversed stratified trials) -> the smallest
N within `trials_tolerance` of the full budget, but at least `min_trials`. Without tuning the classifier's
own t_range and n_trials stand.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from pipelines.diffusion_classifier_report.params import DiffusionClassifierReportParams
from training.diffusion.schedule import DiffusionSchedule
from training.diffusion_classifier import (
    DiffusionClassifierParams,
    accuracy_vs_trials,
    classify_latents,
    informative_t_range,
    sufficient_trials,
    vote_accuracy_by_t,
)
from training.diffusion_classifier.denoiser import Denoiser

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tuning:
    classifier: DiffusionClassifierParams  # the vote to classify with: tuned t_range and n_trials
    tuned: bool
    images: int = 0  # validation latents tuned on
    network_evals: int = 0  # spent on tuning
    by_t: list[dict] = field(default_factory=list)  # trial accuracy per t bin (first full vote)
    ablation: list[dict] = field(default_factory=list)  # accuracy/F1 vs N (second full vote)

    def summary(self) -> dict:
        return {"tuned": self.tuned, "t_range": list(self.classifier.t_range), "n_trials": self.classifier.n_trials,
                "images": self.images, "network_evals": self.network_evals}


def with_vote(params: DiffusionClassifierParams, **changes: object) -> DiffusionClassifierParams:
    """`params` with some fields changed, validated again."""
    return DiffusionClassifierParams.model_validate(params.model_dump() | changes)


def trial_counts(n_max: int) -> list[int]:
    """1, 2, 4, ... up to n_max, and n_max itself: the N of the accuracy-vs-N tables."""
    counts = [2**j for j in range(n_max.bit_length()) if 2**j < n_max]
    return [*counts, n_max]


def full_vote(params: DiffusionClassifierParams, **changes: object) -> DiffusionClassifierParams:
    """Every trial computed (no early stop): what the per-t and per-N tables need."""
    return with_vote(params, early_stop="off", **changes)


def tune_vote(model: Denoiser, latents: torch.Tensor, labels: torch.Tensor, conditions: dict[str, torch.Tensor],
              image_ids: list[int], params: DiffusionClassifierReportParams, schedule: DiffusionSchedule,
              device: torch.device) -> Tuning:
    """The tuned vote (see the module docstring); `labels` are the validation classes (0/1)."""
    base = params.classifier
    if not params.tune:
        return Tuning(classifier=base, tuned=False)
    count = len(labels) if params.tuning_images is None else min(params.tuning_images, len(labels))
    latents, labels = latents[:count], labels[:count]
    conditions = {name: values[:count] for name, values in conditions.items()}
    ids = image_ids[:count]
    steps = schedule.num_timesteps

    spread = classify_latents(model, latents, full_vote(base), schedule, conditions=conditions, image_ids=ids,
                              device=device)
    by_t = vote_accuracy_by_t(spread.errors, spread.timesteps, labels, base.classes, bins=params.t_bins,
                              num_timesteps=steps)
    t_range = informative_t_range(by_t, params.t_tolerance, num_timesteps=steps)
    focused = classify_latents(model, latents, full_vote(base, t_range=t_range), schedule, conditions=conditions,
                               image_ids=ids, device=device)
    ablation = accuracy_vs_trials(focused.errors, labels, base.classes, trial_counts(base.n_trials))
    n_trials = max(params.min_trials, sufficient_trials(ablation, params.trials_tolerance, mode=base.mode))
    tuned = with_vote(base, t_range=t_range, n_trials=n_trials)
    evals = int(spread.network_evals.sum() + focused.network_evals.sum())
    log.info("tuned on %d validation latents: t_range %s, n_trials %d (%d network evaluations)", count, t_range,
             n_trials, evals)
    return Tuning(classifier=tuned, tuned=True, images=count, network_evals=evals, by_t=by_t, ablation=ablation)
