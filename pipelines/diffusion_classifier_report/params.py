"""Parameters of the `diffusion_classifier_report` stage (METHOD.md §6; issue 7; second paper).

Demo defaults run the embedded demo (DiT-T/2 on 4x8x8 latents, ~40-200 test latents) in a few minutes
on 2 CPU cores. Real ISIC profile (one GPU), in the comments: classifier.n_trials 501 (the paper's full vote:
the AUC tuning's reference and the upper bound it searches), images_per_forward 256, autocast_bf16 true,
max_trials_for_figures 501, tuning_images 1000, max_test_images null, gallery_per_class 4,
bootstrap_samples 2000, external_sets true, max_external_images null, min_group_size 30.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from training.diffusion_classifier import DiffusionClassifierParams

MALIGNANT = 1  # label token of malignant lesions (training/conditions.py): the score's class

# The demo's vote: the trial budget the tuning searches is 32 (real profile: the paper's 501), exact early
# stop (the same prediction as the full vote), 20 DDIM steps for the counterfactuals (real profile: 50).
DEMO_CLASSIFIER = DiffusionClassifierParams(n_trials=32, early_stop="exact", images_per_forward=32, chunk_size=8,
                                            counterfactual_steps=20)


class DiffusionClassifierReportParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # The vote. With `tune`, its t_range and n_trials are the search space (t range to narrow, trial budget
    # to cut; n_trials is also the full vote the AUC tuning compares with: the paper's 501); without, they
    # are used as given.
    classifier: DiffusionClassifierParams = DEMO_CLASSIFIER
    tune: bool = True
    # What the tuning keeps (tuning.py). "auc" (issue 15): the ranking the report scores, on full votes of
    # every tuning seed over classifier.t_range: the t window = the best bin by validation AUC (mean over the
    # seeds) grown over neighbours within t_tolerance; N = the smallest with mean validation AUC within
    # auc_tolerance of the full classifier.n_trials vote's (same score), in that window or over the whole
    # range, whichever needs fewer; early stop off (a share or mean over fewer trials ranks worse).
    # "accuracy" (issue 7): per-t trial accuracy -> t range, majority accuracy vs N -> N (one seed); also what
    # "auc" falls back to, with a warning, when the validation latents hold one class.
    tuning_target: Literal["accuracy", "auc"] = "auc"
    # The score that ranks (predictions' `score`) and whose threshold decides (decision.py): the malignant vote
    # share, the error gap (mean err_benign - err_malignant), or "auto": the one the AUC tuning needs fewer
    # trials with (then the higher validation AUC); "auto" is the vote share with tuning_target "accuracy".
    score: Literal["vote_share", "error_gap", "auto"] = "auto"
    # Trial seeds of the tuning's full votes: the AUC vs t and N is averaged over them and their SD reported
    # (trial noise is as large as image noise on ~100 images; docs/benchmarks.md). Only the first with "accuracy".
    tuning_seeds: tuple[int, ...] = Field((0, 1, 2), min_length=1)
    tuning_images: int | None = Field(None, ge=1)  # first k validation latents for tuning; None = all (real: 1000)
    t_bins: int = Field(10, ge=2)  # equal bins of the t search range for the per-t tables
    t_tolerance: float = Field(0.05, ge=0.0, le=1.0)  # bins within this of the best bin (AUC or trial accuracy)
    auc_tolerance: float = Field(0.02, ge=0.0, le=1.0)  # "auc": N within this validation AUC of the full vote
    trials_tolerance: float = Field(0.005, ge=0.0, le=1.0)  # "accuracy": N within this accuracy of the largest N
    # Floor of the tuned N: a few trials give a vote share resolution for the AUC and the threshold (with exact
    # early stop a unanimous image still stops after a majority of them). 1 = no floor.
    min_trials: int = Field(8, ge=1)
    # One full vote (early stop off) on the test split over classifier.t_range for the figures (paper Fig. 2:
    # accuracy, F1 and AUC vs N, majority/vote share vs average/error gap) and as the reference the report's
    # vote is compared with; the paper's N = 501 (Table 1 caption) in the real profile.
    max_trials_for_figures: int = Field(64, ge=1)
    gallery_per_class: int = Field(3, ge=0)  # malignant and benign test cases in the counterfactual gallery
    max_test_images: int | None = Field(None, ge=1)  # first k test latents (a demo cap); None = all
    # Also classify the external test sets (the external_sets stage's table, e.g. DDI): their images are encoded
    # with the vae stage's codec and voted with the same tuned vote; predictions go into predictions.parquet
    # with test_set = the set's name, as the other classifiers write them.
    external_sets: bool = True
    max_external_images: int | None = Field(None, ge=1)  # first k images of each external set; None = all
    # The decision threshold on the score from the validation predictions, by the same rule as the fairness
    # report (pipelines/fairness/threshold.py); keep equal to fairness_report's. The vote's decision is the score
    # at this threshold (the reweighted vote, training/diffusion_classifier/decision.py).
    threshold_rule: Literal["youden", "specificity", "fixed"] = "youden"
    fixed_threshold: float = Field(0.5, ge=0.0, le=1.0)
    target_specificity: float = Field(0.8, gt=0.0, lt=1.0)  # threshold_rule "specificity"
    bootstrap_samples: int = Field(200, ge=0, le=100_000)  # CIs of metrics.json (real profile: 2000)
    # Groups smaller than this take no part in the per-set gaps; keep equal to fairness_report's (real: 30).
    min_group_size: int = Field(1, ge=1)
    seed: int = 0  # bootstrap streams (the trials are seeded by classifier.seed)
    device: str = "auto"  # "auto": CUDA when present, else the CPU
    out: str = "diffusion_classifier_report"

    @model_validator(mode="after")
    def _check(self) -> DiffusionClassifierReportParams:
        if self.classifier.condition != "label" or MALIGNANT not in self.classifier.classes:
            raise ValueError(f"diffusion_classifier_report.classifier: condition {self.classifier.condition!r}, "
                             f"classes {self.classifier.classes}; expected condition 'label' with the malignant "
                             f"class {MALIGNANT} among the classes (the score is its vote share)")
        if self.tune and self.min_trials > self.classifier.n_trials:
            raise ValueError(f"diffusion_classifier_report.min_trials {self.min_trials} exceeds the trial budget "
                             f"classifier.n_trials {self.classifier.n_trials}")
        if len(self.classifier.classes) != 2:
            raise ValueError(f"diffusion_classifier_report.classifier.classes {self.classifier.classes}: expected two "
                             "classes (benign, malignant); the scores and the reweighted vote are two-class")
        if len(set(self.tuning_seeds)) != len(self.tuning_seeds):
            raise ValueError(f"diffusion_classifier_report.tuning_seeds {self.tuning_seeds}: expected distinct seeds")
        return self
