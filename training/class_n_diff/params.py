"""Parameters of one Class-N-Diff (or DiT-only) training run.

Defaults are the CPU demo (4×8×8 latents from the demo VAE, a few hundred of them, minutes on 2 cores).
The real profile (paper §IV-A and METHOD.md §2–3; pipelines/profiles.py, `fairskin config --profile real`) sets:

    model: DiT-L/4            # 24 blocks, hidden 1024, 16 heads, patch 4 (paper §III-B)
    classifier_backbone: resnet101
    classifier_pretrained_file: /path/to/resnet101.safetensors   # optional, local only
    steps: 200000             # paper §IV-A
    batch_size: 8             # paper §IV-A (global batch)
    lr: 1.0e-4                # paper §IV-A
    ema_decay: 0.9999         # DiT
    ema_warmup: false
    cpu_threads: null
    checkpoint_every_minutes: 30   # ~7 GB each (DiT-L, EMA, AdamW, ResNet-101), outside the DVC out
    validate_every: 10000
    sample_every: 20000

`preset` picks a row of the paper's Table I (training.class_n_diff.presets); the explicit fields
`lam`, `gamma_*`, `classifier_start` and `classifier_update_every` override that row when set.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from training.conditions import CONDITIONS

PRESETS = ("setting1", "setting2", "setting3", "setting4", "setting5")


class TrainParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: Literal["setting1", "setting2", "setting3", "setting4", "setting5"] = "setting3"
    # DiT
    model: str = "DiT-T/2"  # training.dit registry name
    conditioning: Literal["cross_attn", "adaln"] = "cross_attn"
    # `label` always; skin_tone (and sex) give the generation plan its label × skin-tone cells (METHOD.md §2)
    conditions: tuple[str, ...] = ("label", "skin_tone")
    class_dropout_prob: float = Field(0.1, ge=0.0, le=1.0)  # CFG dropout per condition (METHOD.md §2)
    # optimisation
    steps: int = Field(600, ge=1)
    batch_size: int = Field(8, ge=1)  # global batch per optimizer step (paper: 8)
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(1e-4, gt=0)  # paper §IV-A
    weight_decay: float = Field(0.0, ge=0)  # DiT: AdamW, no weight decay
    warmup_steps: int = Field(0, ge=0)
    grad_clip: float | None = None
    ema_decay: float = Field(0.999, ge=0.0, lt=1.0)  # real profile 0.9999 (DiT); the demo runs only ~1k steps
    ema_warmup: bool = True  # decay min(ema_decay, (1 + n) / (10 + n)) so short runs get a usable EMA
    sample_posterior: bool = True  # z0 = mean + std·ε when the latent set caches the posterior std
    # Class-N-Diff joint training; None = the preset's value
    lam: float | None = Field(None, ge=0)
    gamma_initial: float | None = Field(None, ge=0, le=1)
    gamma_step: float | None = Field(None, ge=0, le=1)
    gamma_period: int | None = Field(None, ge=1)
    gamma_max: float | None = Field(None, ge=0, le=1)
    classifier_start: int | None = Field(None, ge=0)
    classifier_update_every: int | None = Field(None, ge=1)
    # The classifier sees the DiT's x̂0 only at t <= this (other samples of an x̂0 micro-batch show it z0): at
    # larger t, x̂0 is noise amplified by 1/√ᾱ_t and its gradient wrecks the DiT (training/class_n_diff/step.py).
    # At t = 300, 1/√ᾱ_t ≈ 1.6. None = every t (the paper's text).
    x0_hat_max_t: int | None = Field(300, ge=0)
    # latent classifier
    classifier_backbone: str = "resnet10t"  # real profile resnet101 (paper §III-A); a 4.9M-param ResNet for the demo
    classifier_pretrained_file: str | None = None
    classifier_head_hidden: int = Field(512, ge=1)
    classifier_lr: float = Field(1e-4, gt=0)
    # resumable checkpoints (training/checkpoint_policy.py): outside the run folder, every so many minutes of work
    # (what a crash may cost; the clock is read every `log_every` steps, where all ranks agree on it) and/or every
    # so many steps (None: not by that measure), always at the end
    checkpoint_every_minutes: float | None = Field(30.0, gt=0)
    checkpoint_every: int | None = Field(None, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    # run folder
    validate_every: int = Field(200, ge=1)
    sample_every: int = Field(0, ge=0)  # 0: a sample grid at the end only
    sample_steps: int = Field(50, ge=1)  # DDIM steps for the grid
    sample_per_row: int = Field(8, ge=1)
    sample_guidance: float = Field(1.0, ge=0)  # classifier-free guidance scale of the grid (1 = none)
    log_every: int = Field(10, ge=1)
    seed: int = 0
    mixed_precision: Literal["auto", "no", "bf16"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    compile: bool = False  # torch.compile the DiT and the classifier
    # Write the keys of the latents each process trained on, per step, to samples_seen/rank{r}.tsv in the run
    # folder (training.class_n_diff.samples_seen): an audit of what DDP ranks saw; costs a line per sample.
    record_samples: bool = False
    # CPU threads for the run (restored after). The demo's tiny models gain nothing from a second thread and
    # lose up to 10x to OpenMP waits on a busy 2-core machine; None keeps torch's default (real profile).
    cpu_threads: int | None = Field(1, ge=1)

    @field_validator("conditions")
    @classmethod
    def _conditions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [c for c in value if c not in CONDITIONS]
        if "label" not in value or unknown or len(set(value)) != len(value):
            raise ValueError(f"conditions: {value}; expected 'label' plus distinct names from {sorted(CONDITIONS)}")
        return value

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        from training.dit import dit_config

        try:
            dit_config(value)
        except KeyError as error:
            raise ValueError(str(error)) from None
        return value


# Fields that change how a run reports, not what it computes: a resumed run may change them.
OPERATIONAL_FIELDS = frozenset({"checkpoint_every", "checkpoint_every_minutes", "keep_checkpoints", "validate_every",
                                "sample_every", "sample_steps", "sample_per_row", "sample_guidance", "log_every",
                                "compile", "cpu_threads", "mixed_precision", "record_samples"})
