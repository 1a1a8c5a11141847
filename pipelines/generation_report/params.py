"""Parameters of the `generation_report` stage (METHOD.md §5; Class-N-Diff §IV-B, Table II, Figs 2-3).

Defaults are the paper's and serve both profiles: FID on 5k/10k/20k synthetic samples (capped by what
exists, so the demo reports its few hundred), 1000 images per set in the KDE/PCA plots. FIDs from
different feature networks are not comparable; the report names the network used.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class GenerationReportParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sample_counts: list[int] = Field(default_factory=lambda: [5000, 10000, 20000])  # Table II
    # `classifier`: the project's joint classifier features (VAE encoder -> latent classifier backbone), works
    # offline; `inception_v3`: an Inception-v3 state dict from a local file (`inception_v3_path`), e.g. the
    # ISIC-fine-tuned one the paper uses; never downloaded.
    feature_network: Literal["classifier", "inception_v3"] = "classifier"
    inception_v3_path: str | None = None
    real_split: Literal["train", "val", "test"] = "train"  # the real images compared against
    ms_ssim_pairs: int = Field(200, ge=1)  # random same-class pairs per class (real profile: 1000)
    k: int = Field(3, ge=1)  # k-NN radius of the precision/recall manifolds (Kynkaanniemi et al. 2019: k=3)
    plot_samples: int = Field(1000, ge=2)  # images per set in the KDE and PCA plots (paper §IV-B: 1000)
    grid_columns: int = Field(6, ge=1)  # images per row of the sample grid (Fig. 2)
    batch_size: int = Field(64, ge=1)  # images per feature-network forward
    seed: int = 0
    out: str = "generation_report"

    @model_validator(mode="after")
    def _inception_needs_a_file(self) -> GenerationReportParams:
        if self.feature_network == "inception_v3" and not self.inception_v3_path:
            raise ValueError("generation_report.feature_network inception_v3 needs inception_v3_path (a local file)")
        if not self.sample_counts or min(self.sample_counts) < 2:
            raise ValueError(f"generation_report.sample_counts {self.sample_counts}: FID needs at least 2 samples")
        return self
