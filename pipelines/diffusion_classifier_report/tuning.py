"""Tune the vote on the validation split only: which t carry the class signal, how many trials suffice, and
(tuning_target "auc") which score ranks. Never the test split.

tuning_target "auc" (issue 15; what the report scores is a ranking, AUC at a validation threshold):
1. One full vote (early stop off, classifier.n_trials trials over classifier.t_range) on the validation latents
   per trial seed in `tuning_seeds`: trial noise is measured, not assumed away.
2. Per score (vote share, error gap; or the configured one): the AUC of each equal t bin's trials alone, mean
   over seeds -> the window: the best bin grown over neighbours within `t_tolerance` (evaluation.ranking_t_window).
3. For that window and for the whole range: the AUC of the first N trials inside it (prefixes of the
   bit-reversed stratified trials, evaluation.auc_vs_trials), mean and SD over seeds, for N = 1, 2, 3, 4, 6, 8,
   12, 16, 24, ... (>= min_trials; at most the trials every image has there) -> the smallest N whose mean AUC
   is within `auc_tolerance` of the full vote's (all classifier.n_trials trials over the whole range, same
   score, mean over seeds). The whole range at N = n_trials is the full vote itself, so some N always qualifies.
4. Chosen: the fewest trials; then the higher validation AUC at that N; then the vote share (the paper's).
   The vote: t_range = its window, n_trials = its N, early stop off (a share or a mean over fewer trials ranks
   worse), mode majority (vote share) or average (error gap).
Everything behind the choice (per-bin and per-N tables with their SDs, the candidates, the references) goes
into `Tuning.evidence` -> tuning.json and metrics.json.

tuning_target "accuracy" (issue 7): a full vote over classifier.t_range gives the trial accuracy per t bin ->
the informative t range; one over that range gives majority accuracy vs N -> the smallest N within
`trials_tolerance` of the full budget, at least `min_trials` (first tuning seed only). Without tuning the
classifier's own t_range and n_trials stand.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch

from pipelines.diffusion_classifier_report.params import DiffusionClassifierReportParams
from training.diffusion.schedule import DiffusionSchedule
from training.diffusion_classifier import (
    DiffusionClassifierParams,
    accuracy_vs_trials,
    auc_by_t,
    auc_vs_trials,
    classify_latents,
    informative_t_range,
    ranking_scores,
    sufficient_trials,
    vote_accuracy_by_t,
)
from training.diffusion_classifier.decision import SCORES
from training.diffusion_classifier.denoiser import Denoiser
from training.diffusion_classifier.evaluation import (
    ranking_auc,
    ranking_t_window,
    ranking_trial_counts,
    seed_summary,
    smallest_sufficient_n,
    trials_in_window,
)

log = logging.getLogger(__name__)
AUC_KEYS = tuple(f"{score}_auc" for score in SCORES)


@dataclass(frozen=True)
class Tuning:
    classifier: DiffusionClassifierParams  # the vote to classify with: tuned t_range and n_trials
    tuned: bool
    score: str = "vote_share"  # the score that ranks and decides (decision.py)
    target: str = "none"  # "auc", "accuracy" or "none" (not tuned)
    images: int = 0  # validation latents tuned on
    network_evals: int = 0  # spent on tuning
    by_t: list[dict] = field(default_factory=list)  # per t bin: trial accuracy ("accuracy") or AUC per score ("auc")
    ablation: list[dict] = field(default_factory=list)  # accuracy/F1 vs N, or AUC vs N in the chosen window
    evidence: dict = field(default_factory=dict)  # "auc": references, candidates, seeds, the rule

    def summary(self) -> dict:
        chosen = {"tuned": self.tuned, "target": self.target, "score": self.score,
                  "t_range": list(self.classifier.t_range), "n_trials": self.classifier.n_trials,
                  "network_evals_per_image": self.classifier.n_trials * len(self.classifier.classes),
                  "early_stop": self.classifier.early_stop, "images": self.images,
                  "network_evals": self.network_evals}
        if self.evidence:
            chosen |= {k: self.evidence[k] for k in ("validation_auc", "validation_auc_sd", "reference_auc",
                                                     "reference_auc_sd", "seeds", "fallback") if k in self.evidence}
        return chosen


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


def ranking_vote(params: DiffusionClassifierParams, score: str, **changes: object) -> DiffusionClassifierParams:
    """The vote the ranking needs: every one of its trials computed, decided by the mode matching the score."""
    return with_vote(params, early_stop="off", mode="majority" if score == "vote_share" else "average", **changes)


def untuned(params: DiffusionClassifierReportParams) -> Tuning:
    score = "vote_share" if params.score == "auto" else params.score
    return Tuning(classifier=params.classifier, tuned=False, score=score)


def tune_vote(model: Denoiser, latents: torch.Tensor, labels: torch.Tensor, conditions: dict[str, torch.Tensor],
              image_ids: list[int], params: DiffusionClassifierReportParams, schedule: DiffusionSchedule,
              device: torch.device) -> Tuning:
    """The tuned vote (see the module docstring); `labels` are the validation classes (0/1)."""
    if not params.tune:
        return untuned(params)
    count = len(labels) if params.tuning_images is None else min(params.tuning_images, len(labels))
    latents, labels = latents[:count], labels[:count]
    conditions = {name: values[:count] for name, values in conditions.items()}
    ids = image_ids[:count]
    if params.tuning_target == "accuracy":
        return tune_accuracy(model, latents, labels, conditions, ids, params, schedule, device)
    if len(set(labels.tolist())) < 2:  # no AUC to tune for (tiny projects): the accuracy tuning, said so
        log.warning("tuning for AUC needs both classes among the %d validation latents (labels %s): tuning for "
                    "accuracy instead", len(labels), sorted(set(labels.tolist())))
        tuning = tune_accuracy(model, latents, labels, conditions, ids, params, schedule, device)
        note = f"validation labels {sorted(set(labels.tolist()))}: no AUC to tune for; tuned for accuracy instead"
        return replace(tuning, evidence={"fallback": note})
    base = params.classifier
    runs = [classify_latents(model, latents, full_vote(base, seed=seed), schedule, conditions=conditions,
                             image_ids=ids, device=device) for seed in params.tuning_seeds]
    tuning = choose_ranking_vote([(r.errors, r.timesteps) for r in runs], labels, params, schedule.num_timesteps)
    evals = int(sum(int(r.network_evals.sum()) for r in runs))
    log.info("tuned for AUC on %d validation latents x %d trial seeds: score %s, t_range %s, n_trials %d, "
             "validation AUC %.3f (full vote %.3f) (%d network evaluations)", count, len(runs), tuning.score,
             tuning.classifier.t_range, tuning.classifier.n_trials, tuning.evidence["validation_auc"],
             tuning.evidence["reference_auc"], evals)
    return replace(tuning, images=count, network_evals=evals)


def choose_ranking_vote(runs: Sequence[tuple[torch.Tensor, torch.Tensor]], labels: torch.Tensor,
                        params: DiffusionClassifierReportParams, num_timesteps: int = 1000) -> Tuning:
    """Steps 2-4 of the module docstring on full votes already computed: (errors (n, 2, N), timesteps (n, N))
    per trial seed, all over classifier.t_range."""
    base = params.classifier
    classes = base.classes
    scores = SCORES if params.score == "auto" else (params.score,)
    by_t = seed_summary([auc_by_t(errors, timesteps, labels, classes, bins=params.t_bins,
                                  num_timesteps=num_timesteps, t_range=base.t_range) for errors, timesteps in runs],
                        AUC_KEYS)
    reference = seed_summary([[{f"{score}_auc": ranking_auc(labels, classes, full[score]) for score in SCORES}]
                              for full in (ranking_scores(e, t, e.shape[2], None, num_timesteps) for e, t in runs)],
                             AUC_KEYS)[0]
    if any(math.isnan(reference[key]) for key in AUC_KEYS):
        raise ValueError(f"validation labels hold {sorted(set(labels.tolist()))}: tuning for AUC needs both classes; "
                         "expected malignant and benign validation latents (or tuning_target 'accuracy')")
    candidates = []
    for score in scores:
        key = f"{score}_auc"
        # bins where some image has no trial (few trials per bin) have no AUC; with none, only the whole range
        binned = any(not math.isnan(row[key]) for row in by_t)
        window = ranking_t_window(by_t, key, params.t_tolerance, num_timesteps) if binned else tuple(base.t_range)
        for t_range in dict.fromkeys([window, tuple(base.t_range)]):
            available = min(trials_in_window(t, e, t_range, num_timesteps) for e, t in runs)
            counts = [n for n in ranking_trial_counts(base.n_trials) if params.min_trials <= n <= available]
            if not counts:
                continue
            curve = seed_summary([auc_vs_trials(e, t, labels, classes, counts, t_range, num_timesteps)
                                  for e, t in runs], AUC_KEYS)
            n = smallest_sufficient_n(curve, key, reference[key], params.auc_tolerance)
            at = next((row for row in curve if row["n_trials"] == n), None)
            candidates.append({"score": score, "t_range": list(t_range), "n_trials": n,
                               "window_from_bins": t_range == window,
                               "validation_auc": None if at is None else at[key],
                               "validation_auc_sd": None if at is None else at[f"{key}_sd"],
                               "reference_auc": reference[key], "reference_auc_sd": reference[f"{key}_sd"],
                               "curve": curve})
    feasible = [c for c in candidates if c["n_trials"] is not None]
    if not feasible:
        raise ValueError(f"no t window and N reach the full vote's validation AUC within {params.auc_tolerance}: "
                         "expected the whole t range at N = classifier.n_trials to (are the runs full votes?)")
    chosen = min(feasible, key=lambda c: (c["n_trials"], -c["validation_auc"], SCORES.index(c["score"])))
    classifier = ranking_vote(base, chosen["score"], t_range=tuple(chosen["t_range"]), n_trials=chosen["n_trials"])
    evidence = {
        "rule": (f"validation only, {len(runs)} trial seed(s): t window = the best of {params.t_bins} t bins by "
                 f"AUC (mean over seeds) grown over neighbours within {params.t_tolerance}; N = the smallest of "
                 f"{ranking_trial_counts(base.n_trials)} (>= {params.min_trials}) whose mean AUC is within "
                 f"{params.auc_tolerance} of the full {base.n_trials}-trial vote's (same score), in that window or "
                 "over the whole range; the fewest trials wins, then the higher AUC, then the vote share"),
        "seeds": list(params.tuning_seeds)[: len(runs)],
        "score": chosen["score"], "t_range": chosen["t_range"], "n_trials": chosen["n_trials"],
        "validation_auc": chosen["validation_auc"], "validation_auc_sd": chosen["validation_auc_sd"],
        "reference_auc": chosen["reference_auc"], "reference_auc_sd": chosen["reference_auc_sd"],
        "full_vote_auc": reference,
        "candidates": [{k: v for k, v in c.items() if k != "curve"} for c in candidates],
        "auc_vs_trials": {f"{c['score']} t {c['t_range'][0]:g}-{c['t_range'][1]:g}": c["curve"] for c in candidates},
    }
    return Tuning(classifier=classifier, tuned=True, score=chosen["score"], target="auc", images=len(labels),
                  by_t=by_t, ablation=chosen["curve"], evidence=evidence)


def tune_accuracy(model: Denoiser, latents: torch.Tensor, labels: torch.Tensor, conditions: dict[str, torch.Tensor],
                  ids: list[int], params: DiffusionClassifierReportParams, schedule: DiffusionSchedule,
                  device: torch.device) -> Tuning:
    """tuning_target "accuracy" (the module docstring's last paragraph), at the first tuning seed."""
    base = with_vote(params.classifier, seed=params.tuning_seeds[0])
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
    tuned = with_vote(params.classifier, t_range=t_range, n_trials=n_trials)
    evals = int(spread.network_evals.sum() + focused.network_evals.sum())
    log.info("tuned for accuracy on %d validation latents: t_range %s, n_trials %d (%d network evaluations)",
             len(labels), t_range, n_trials, evals)
    score = "vote_share" if params.score == "auto" else params.score
    return Tuning(classifier=tuned, tuned=True, score=score, target="accuracy", images=len(labels),
                  network_evals=evals, by_t=by_t, ablation=ablation)
