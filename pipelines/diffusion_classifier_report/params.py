"""Parameters of the `diffusion_classifier_report` stage (METHOD.md §6; issue 7; second paper).

Demo defaults run the embedded demo (DiT-T/2 on 4x8x8 latents, ~40-200 test latents) in about two minutes
on 2 CPU cores. Real ISIC profile (one GPU), in the comments: classifier.n_trials 501 (the paper's budget,
the upper bound the tuning searches below), images_per_forward 256, autocast_bf16 true,
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
    # to cut); without, they are used as given.
    classifier: DiffusionClassifierParams = DEMO_CLASSIFIER
    # Tune on the validation split (training/diffusion_classifier/evaluation.py): a full vote over
    # classifier.t_range -> per-t trial accuracy -> the informative t range; a full vote over that range ->
    # accuracy vs N -> the smallest sufficient N.
    tune: bool = True
    tuning_images: int | None = Field(None, ge=1)  # first k validation latents for tuning; None = all (real: 1000)
    t_bins: int = Field(10, ge=2)  # equal bins of t for the per-t trial accuracy
    t_tolerance: float = Field(0.05, ge=0.0, le=1.0)  # bins within this of the best trial accuracy are kept
    trials_tolerance: float = Field(0.005, ge=0.0, le=1.0)  # N within this accuracy of the largest N suffices
    # Floor of the tuned N: the score is a vote share, so a few trials give it resolution for the AUC and the
    # threshold (with exact early stop a unanimous image still stops after a majority of them). 1 = no floor.
    min_trials: int = Field(8, ge=1)
    # One full vote (early stop off) on the test split for the figures (paper Figs. 2, 3, 9); the paper's
    # N = 501 (Table 1 caption) in the real profile.
    max_trials_for_figures: int = Field(64, ge=1)
    gallery_per_class: int = Field(3, ge=0)  # malignant and benign test cases in the counterfactual gallery
    max_test_images: int | None = Field(None, ge=1)  # first k test latents (a demo cap); None = all
    # Also classify the external test sets (the external_sets stage's table, e.g. DDI): their images are encoded
    # with the vae stage's codec and voted with the same tuned vote; predictions go into predictions.parquet
    # with test_set = the set's name, as the other classifiers write them.
    external_sets: bool = True
    max_external_images: int | None = Field(None, ge=1)  # first k images of each external set; None = all
    # The decision threshold on the score (vote share of malignant) from the validation predictions, by the
    # same rule as the fairness report (pipelines/fairness/threshold.py); keep equal to fairness_report's.
    threshold_rule: Literal["youden", "fixed"] = "youden"
    fixed_threshold: float = Field(0.5, ge=0.0, le=1.0)
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
        return self
