"""Parameters of the downstream classifiers (issue 6; METHOD.md §5): one timm image classifier, one logit.

Demo defaults finish in about a minute per classifier on 2 CPU cores (64-px images, a 0.6 M-parameter
MobileNetV3). Real profile (documented here, set in params.yaml): `backbone: resnet50` (or `efficientnet_b0`,
`vit_small_patch16_224`), `pretrained_file: <local ImageNet weights>`, `image_size: 224`, `batch_size: 64`,
`lr: 1e-4`, `weight_decay: 1e-4`, `max_steps` = epochs x ceil(real training images / batch) (20 epochs of
the 57,882 ISIC training images at batch 64: 18,100 steps), `eval_every` ~ one epoch of real images (905),
`patience: 5`, `checkpoint_every_minutes: 30`, `num_workers: 8`, `cache_images: false`.

The budget is counted in optimizer steps, not epochs: the augmented classifier's training set is larger,
so "the same number of epochs" would give it more updates than the baseline, and the comparison would
measure the budget as well as the data.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Fields that change how a run executes, not what it computes: a run resumes across changes of these.
EXECUTION_FIELDS = ("eval_batch_size", "checkpoint_every", "checkpoint_every_minutes", "keep_checkpoints",
                    "num_workers", "cache_images", "device", "torch_threads", "parallel_runs", "seeds", "arms")


class DownstreamParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # timm model name (timm.list_models()); one output logit = P(malignant). Real: resnet50 / efficientnet_b0.
    backbone: str = "mobilenetv3_small_050"
    # Local file of pretrained backbone weights (timm names; .safetensors/.pth). None = random init. Never
    # downloaded: loaded through timm's `pretrained_cfg_overlay=dict(file=...)`.
    pretrained_file: str | None = None
    image_size: int = Field(64, ge=16)  # square input side; real profile 224 (the backbones' ImageNet size)
    batch_size: int = Field(32, ge=2)  # real profile 64
    eval_batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0)  # AdamW, constant; real profile with pretrained weights 1e-4
    weight_decay: float = Field(1e-4, ge=0)
    max_steps: int = Field(300, ge=1)  # the step budget, identical for baseline and augmented
    eval_every: int = Field(25, ge=1)  # steps between validation-AUC evaluations
    patience: int = Field(4, ge=1)  # evaluations without a val-AUC gain > min_delta before stopping
    min_delta: float = Field(0.0, ge=0)
    seed: int = 0  # weights init, data order and augmentations; the same for every arm (used when `seeds` is None)
    # The experiment (docs/experiment.md): every arm is trained once per seed with the same budget. With more than
    # one seed the classifiers are named `<arm>_s<seed>` and the fairness report adds each arm's seed mean.
    seeds: list[int] | None = None
    # baseline: real images only; oversampled: real only, the plan's under-represented cells oversampled (drawn
    # again at random) to the counts the generation plan targets; augmented: real + synthetic.
    arms: list[Literal["baseline", "oversampled", "augmented"]] = Field(
        default_factory=lambda: ["baseline", "oversampled", "augmented"])
    # Classifiers trained at once, each in its own process with `torch_threads` threads (1 = in this process).
    parallel_runs: int = Field(1, ge=1)
    # How synthetic images join the augmented classifier's batches:
    #   "pooled": all synthetic samples are added to the real training set and batches are drawn from the union
    #             (each batch is synthetic in the proportion of the pool);
    #   "fraction": every batch holds round(synthetic_fraction x batch_size) synthetic images, the rest real,
    #             each drawn from its own epoch-wise permutation.
    synthetic_mixing: Literal["pooled", "fraction"] = "pooled"
    synthetic_fraction: float = Field(0.5, gt=0, lt=1)  # "fraction" only
    # Training augmentations of the second paper (diffusion classifiers), Appendix B.2: rotation in
    # (-30, 30) degrees, horizontal and vertical flips with p = 0.5, Gaussian blur with kernel 5 and sigma in
    # (0.1, 2). The paper blurs every image (torchvision GaussianBlur draws sigma per image); blur_probability
    # < 1 blurs only some (useful at 64 px, where sigma 2 erases most detail).
    augment: bool = True
    rotation_degrees: float = Field(30.0, ge=0, le=180)
    flip_probability: float = Field(0.5, ge=0, le=1)
    blur_kernel: int = Field(5, ge=1)
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_probability: float = Field(1.0, ge=0, le=1)
    # resumable checkpoints (training/checkpoint_policy.py, outside the run folder): every so many minutes of work
    # and/or steps (None: not by that measure), and when the run finishes
    checkpoint_every_minutes: float | None = Field(30.0, gt=0)
    checkpoint_every: int | None = Field(None, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    num_workers: int = Field(0, ge=0)  # DataLoader worker processes (real profile: 8)
    cache_images: bool = True  # keep decoded, resized images in memory (demo; off for the full ISIC set)
    device: str = "auto"  # "auto" = cuda when available, else cpu
    # CPU intra-op threads while the stage runs (restored after). 1 for the demo: on a shared 2-core machine two
    # threads per process were measured 10-100x slower per step than one. None = torch's default (real profile).
    torch_threads: int | None = Field(1, ge=1)

    @model_validator(mode="after")
    def _check(self) -> DownstreamParams:
        low, high = self.blur_sigma
        if not 0 < low <= high:
            raise ValueError(f"blur_sigma {self.blur_sigma}: expected 0 < low <= high")
        if self.blur_kernel % 2 == 0:
            raise ValueError(f"blur_kernel {self.blur_kernel}: expected an odd kernel size")
        synthetic = round(self.synthetic_fraction * self.batch_size)
        if self.synthetic_mixing == "fraction" and not 0 < synthetic < self.batch_size:
            raise ValueError(f"synthetic_fraction {self.synthetic_fraction} x batch_size {self.batch_size} gives "
                             f"{synthetic} synthetic images per batch; expected at least one real and one synthetic")
        return self

    def seed_list(self) -> list[int]:
        return list(self.seeds) if self.seeds else [self.seed]

    def synthetic_per_batch(self) -> int:
        return round(self.synthetic_fraction * self.batch_size)
