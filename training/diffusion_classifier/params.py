"""Parameters of the diffusion classifier (METHOD.md §6; second paper, Sections 2.2-2.3 and Appendix A).

Defaults are the paper's full vote (501 trials, majority, t over the whole range), made cheaper by
batching and exact early stopping, which never changes a prediction. Early stopping decides the majority
only: a vote share or mean error over fewer trials ranks worse, so the report's ranking vote (issue 15)
computes all of its n_trials (early_stop "off") over a t window, both tuned on the validation split for AUC
(pipelines/diffusion_classifier_report/tuning.py: auc_by_t -> ranking_t_window, auc_vs_trials ->
smallest_sufficient_n, over several trial seeds); the accuracy tuning of issue 7 (vote_accuracy_by_t ->
informative_t_range, accuracy_vs_trials -> sufficient_trials) is kept. docs/benchmarks.md ("Diffusion
classifier") has both. Real ISIC profile: the same keys, tuned on ISIC validation latents,
images_per_forward 256 and autocast_bf16 on a GPU.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class DiffusionClassifierParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # --- the vote (paper Appendix A) ---
    # 501 (eps, t) trials per image: the paper's setting for every diffusion result (Table 1 caption).
    n_trials: int = Field(501, ge=1)
    mode: Literal["majority", "average"] = "majority"  # majority vote is the paper's; average is Li et al. [10]
    # off: all n_trials; exact: stop once the leader cannot be overtaken (same prediction as the full vote);
    # predictive: stop once P(the full vote's winner differs from the current leader) < early_stop_risk.
    early_stop: Literal["off", "exact", "predictive"] = "exact"
    early_stop_risk: float = Field(0.01, gt=0.0, lt=0.5)
    # Trials are drawn t ~ U over t_range (fractions of T = 1000 steps); stratified = one t per stratum
    # of a low-discrepancy sequence, so every prefix of the trials is itself spread over the range.
    t_range: tuple[float, float] = (0.0, 1.0)
    stratified: bool = True
    # Error measured on eps (the paper's pseudocode), x0 or v. Votes do not depend on it (the three differ
    # by a factor per trial common to all classes); the average mode does.
    error_space: Literal["eps", "x0", "v"] = "eps"
    seed: int = 0

    # --- batching: one forward holds images x classes x trials ---
    # trials per image per forward, also the early-stop check interval; when fewer than images_per_forward
    # images are left, each gets proportionally more trials per forward (the batch stays full)
    chunk_size: int = Field(8, ge=1)
    images_per_forward: int = Field(32, ge=1)  # images in flight; finished ones are replaced at once
    autocast_bf16: bool = False  # bf16 autocast of the network (GPU / AMX CPUs); errors stay float32

    # --- conditions ---
    condition: str = "label"  # the condition token that is varied (training/conditions.py)
    classes: tuple[int, ...] = (0, 1)  # its values = the classes; benign 0, malignant 1

    # --- counterfactual explanations (paper Fig. 4, Appendix F) ---
    counterfactual_t_fraction: float = Field(0.3, gt=0.0, le=1.0)  # ISIC: t = 0.3 (Fig. 4 caption)
    guidance_scale: float = Field(7.5, ge=0.0)  # w of Eq. 5: (1 + w) eps(c) - w eps(null); 7.5 in Fig. 4
    counterfactual_steps: int = Field(50, ge=1)  # deterministic DDIM steps from t to 0 (paper: 256 sampling steps)
    heatmap_against: Literal["factual", "input"] = "factual"  # |factual - cf| (class effect) or |input - cf|

    @model_validator(mode="after")
    def _check(self) -> DiffusionClassifierParams:
        low, high = self.t_range
        if not 0.0 <= low < high <= 1.0:
            raise ValueError(f"diffusion_classifier.t_range {self.t_range}: expected 0 <= low < high <= 1")
        if self.mode == "average" and self.early_stop != "off":
            raise ValueError("diffusion_classifier.early_stop must be 'off' with mode 'average': "
                             "an average of unbounded errors cannot be decided before all trials are seen")
        if len(set(self.classes)) != len(self.classes) or len(self.classes) < 2:
            raise ValueError(f"diffusion_classifier.classes {self.classes}: expected >= 2 distinct values")
        return self
