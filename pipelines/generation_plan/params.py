"""Parameters of the `generation_plan` stage: which cells get synthetic samples, and how many (METHOD.md §4).

Demo and real profile use the same policy (`equalize`); on the real ISIC data it asks for thousands of
malignant FST V-VI samples, which is the point of the pipeline. Policies:

- `equalize`: every skin-tone group reaches the largest group's malignant count (within each sex when
  `by_sex`). `equalize_benign` (default true) does the same for benign, so that every group ends with the
  same benign and malignant counts, hence the same malignant share: raising only the malignant count of
  the darker groups would teach a downstream classifier "dark skin -> malignant". With
  `equalize_benign: false` benign cells get nothing.
- `min_per_cell`: every cell reaches at least `min_per_cell` samples.
- `ratio`: every cell gets round(ratio x real count) synthetic samples (half rounds up).
- `none`: a plan that asks for nothing (valid; the synthetic stage then generates nothing).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class GenerationPlanParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: Literal["equalize", "min_per_cell", "ratio", "none"] = "equalize"
    equalize_benign: bool = True  # `equalize` only: benign cells also reach the largest group's benign count
    min_per_cell: int = Field(0, ge=0)  # `min_per_cell` only
    ratio: float = Field(0.0, ge=0.0)  # `ratio` only: synthetic : real per cell
    by_sex: bool = False  # cells label x skin tone x sex (rows of unknown sex are then left out of the counts)
    # Real counts come from this split of the lesions table: the synthetic samples join the training set.
    split: Literal["train", "val", "test"] = "train"
    out: str = "generation_plan"
