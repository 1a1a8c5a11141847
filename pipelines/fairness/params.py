"""Parameters of the `fairness_report` stage (METHOD.md §5; issue 6).

Demo defaults are sized for the embedded demo (a test split of ~40 images, 7 of them FST V-VI); the
real-profile values are given in the comments.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipelines.fairness.subgroups import SUBGROUP_ATTRIBUTES

# Table III of the Class-N-Diff paper, in its row order, with the in-domain ISIC test split first.
# Names are the `test_set` values of the predictions table (external sets: pipelines.external_sets.EXTERNAL_SETS;
# `ddi_A/B/C` are derived from `ddi` by skin-tone group, see `split_by_skin_tone`).
TABLE_III_TEST_SETS = (
    "isic_test", "ddi", "ddi_A", "ddi_B", "ddi_C", "fitzpatrick17k", "derm7pt_derm", "derm7pt_clinic",
    "asan", "mclass_d", "mclass_nd",
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FairnessCheckParams(Strict):
    """The blocking asset check: the classifier about to be promoted must not be less fair than this."""

    classifier: str = "augmented"
    attribute: str = "skin_tone_group"  # the gaps are taken across the groups of this attribute
    # Largest allowed equal-opportunity difference (max - min sensitivity across groups). Demo: loose,
    # because the demo's FST V-VI test group holds one malignant lesion; real profile: 0.1.
    max_sensitivity_gap: float = Field(0.5, ge=0, le=1)
    max_auc_gap: float | None = Field(None, ge=0, le=1)  # real profile: 0.1
    max_equalized_odds: float | None = Field(None, ge=0, le=1)
    # The checked classifier's AUC may not fall below this classifier's by more than `max_auc_drop` on any checked
    # test set: augmentation with bad synthetic data (colour blobs) costs AUC, and this catches it.
    reference_classifier: str | None = "baseline"
    max_auc_drop: float | None = Field(None, ge=0, le=1)
    # Test sets the check looks at; None = every scored test set.
    test_sets: list[str] | None = None
    # A gap that cannot be measured (fewer than two groups with positives) fails the check when true.
    fail_when_unmeasurable: bool = False


class FairnessParams(Strict):
    # Subgroup attributes scored per group (columns of the predictions table; `age_band` is derived).
    subgroups: list[str] = Field(default_factory=lambda: list(SUBGROUP_ATTRIBUTES))
    # Age band edges in years: bands [0, e1), [e1, e2), ..., [ek, inf); NaN ages are "unknown".
    # ISIC ages are multiples of 5 (DATA.md §1.4-1.5), so the bands are "<30", "30-44", "45-59", "60-74", "75+".
    age_band_edges: list[float] = Field(default_factory=lambda: [30.0, 45.0, 60.0, 75.0])
    # Percentile bootstrap 95 % CIs, resampled within each group and stratified by label. Real profile: 2000.
    bootstrap_samples: int = Field(1000, ge=0, le=100_000)
    confidence: float = Field(0.95, gt=0, lt=1)
    seed: int = 0
    # Decision threshold from the validation predictions: "youden" (max sensitivity + specificity - 1,
    # ties -> the lower threshold; 0.5 when validation lacks a class), "specificity" (the lowest threshold at
    # which validation specificity reaches target_specificity) or "fixed" (= fixed_threshold).
    threshold_rule: Literal["youden", "specificity", "fixed"] = "youden"
    fixed_threshold: float = Field(0.5, ge=0, le=1)
    target_specificity: float = Field(0.8, gt=0, lt=1)
    # Groups smaller than this take no part in the gaps (they are still listed). Real profile: 30.
    min_group_size: int = Field(1, ge=1)
    # Test sets expected in the report, in row order; any other test set found in the predictions is
    # appended. An expected set without predictions is reported as "not configured - skipped".
    test_sets: list[str] = Field(default_factory=lambda: list(TABLE_III_TEST_SETS))
    # Test sets also scored per skin-tone group as `<name>_A/_B/_C` (Table III's DDI_A/B/C rows).
    split_by_skin_tone: list[str] = Field(default_factory=lambda: ["ddi"])
    # Attributes drawn as per-group bar charts (AUC and sensitivity with CI whiskers) per test set.
    plot_subgroups: list[str] = Field(default_factory=lambda: ["skin_tone_group"])
    check: FairnessCheckParams = FairnessCheckParams()

    @field_validator("subgroups", "plot_subgroups")
    @classmethod
    def _known_attributes(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in SUBGROUP_ATTRIBUTES]
        if unknown:
            raise ValueError(f"unknown subgroup attribute(s) {unknown}; expected some of {list(SUBGROUP_ATTRIBUTES)}")
        return value

    @field_validator("age_band_edges")
    @classmethod
    def _increasing(cls, value: list[float]) -> list[float]:
        if any(b <= a for a, b in zip(value, value[1:], strict=False)) or any(v <= 0 for v in value):
            raise ValueError(f"age_band_edges {value}: expected strictly increasing positive ages")
        return value

    @model_validator(mode="after")
    def _check_attribute_scored(self) -> FairnessParams:
        if self.check.attribute not in self.subgroups:
            raise ValueError(f"check.attribute {self.check.attribute!r} is not in subgroups {self.subgroups}")
        return self
