"""Parameters of the `generation_report` stage (METHOD.md §5; Class-N-Diff §IV-B, Table II, Figs 2-3).

Defaults are the paper's and serve both profiles: FID on 5k/10k/20k synthetic samples (capped by what
exists, so the demo reports its few hundred), 1000 images per set in the KDE/PCA plots. FIDs from
different feature networks are not comparable; the report names the network used.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from training.sampling.params import SamplingParams


class QualityParams(BaseModel):
    """The `synthetic_quality` gate (pipelines/generation_report/quality.py): limits and how the audit is drawn.

    Limits were set from the demo's measurements before the downstream experiment was run (docs/experiment.md):
    good demo generators measure fid_ratio 13-18, skin-tone agreement ~0.8, label AUC ~0.7 (with label guidance
    3); generators of colour blobs 44-76, 0.4-0.55 and 0.45-0.55.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_samples: int = Field(200, ge=2)  # audit samples per judged model (a multiple of held-out half A)
    # How the audit samples; None = exactly as the synthetic_shards stage samples (sampler, steps, guidance).
    sampling: SamplingParams | None = None
    reference_steps: int = Field(250, ge=1)  # reference network: optimizer steps on real training images
    reference_batch_size: int = Field(64, ge=2)
    min_skin_pixels: int = Field(200, ge=1)  # as lesions.min_skin_pixels
    max_fid_ratio: float = Field(30.0, gt=0)  # fid_heldout / fid_real_reference
    min_skin_tone_agreement: float = Field(0.6, ge=0, le=1)  # also applied to the shards' samples
    min_label_auc: float = Field(0.6, ge=0, le=1)
    max_memorized_fraction: float = Field(0.2, ge=0, le=1)
    # Worst asked skin-tone group's share of samples whose skin hue and chroma lie in real skin's range
    # (quality.py): blue, purple or green "skin" fails whatever its ITA group.
    min_skin_colour_plausible: float = Field(0.7, ge=0, le=1)
    seed: int = 0

    def limits(self) -> dict[str, float]:
        return {"max_fid_ratio": self.max_fid_ratio, "min_skin_tone_agreement": self.min_skin_tone_agreement,
                "min_label_auc": self.min_label_auc, "max_memorized_fraction": self.max_memorized_fraction,
                "min_skin_colour_plausible": self.min_skin_colour_plausible}


class GenerationReportParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sample_counts: list[int] = Field(default_factory=lambda: [5000, 10000, 20000])  # Table II
    # `classifier`: the project's joint classifier features (VAE encoder -> latent classifier backbone), works
    # offline; `inception_v3`: an Inception-v3 state dict from a local file (`inception_v3_path`), e.g. the
    # ISIC-fine-tuned one the paper uses; never downloaded.
    # `reference`: the real-only reference network of the quality audit (reference_network.py), the default: it
    # was not trained with the generator.
    feature_network: Literal["reference", "classifier", "inception_v3"] = "reference"
    inception_v3_path: str | None = None
    real_split: Literal["train", "val", "test"] = "train"  # the real images compared against
    ms_ssim_pairs: int = Field(200, ge=1)  # random same-class pairs per class (real profile: 1000)
    k: int = Field(3, ge=1)  # k-NN radius of the precision/recall manifolds (Kynkaanniemi et al. 2019: k=3)
    plot_samples: int = Field(1000, ge=2)  # images per set in the KDE and PCA plots (paper §IV-B: 1000)
    grid_columns: int = Field(6, ge=1)  # images per row of the sample grid (Fig. 2)
    batch_size: int = Field(64, ge=1)  # images per feature-network forward
    seed: int = 0
    quality: QualityParams = QualityParams()
    out: str = "generation_report"

    @model_validator(mode="after")
    def _inception_needs_a_file(self) -> GenerationReportParams:
        if self.feature_network == "inception_v3" and not self.inception_v3_path:
            raise ValueError("generation_report.feature_network inception_v3 needs inception_v3_path (a local file)")
        if not self.sample_counts or min(self.sample_counts) < 2:
            raise ValueError(f"generation_report.sample_counts {self.sample_counts}: FID needs at least 2 samples")
        return self
