"""Parameters of latent sampling with the EMA model (METHOD.md §4).

Real profile (the paper): `sampler: ddpm`, `steps: 250` (Class-N-Diff §III-C, "as DiT": 1000 training
steps respaced to 250 with the learned variance), no guidance (every scale 1). Demo default: DPM-Solver++
at 20 steps, about 12x fewer network evaluations than DDPM-250 (docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from training.conditions import CONDITIONS

SAMPLERS = ("ddpm", "ddim", "dpmsolver++")


class SamplingParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sampler: Literal["ddpm", "ddim", "dpmsolver++"] = "dpmsolver++"
    steps: int = Field(20, ge=1, le=1000)  # network steps out of the 1000 training steps
    # Classifier-free guidance scale per condition (label, skin_tone, sex); a condition not listed has
    # scale 1 (purely conditional). 0 = unconditional on that attribute, > 1 = stronger. See guidance.py.
    guidance: dict[str, float] = Field(default_factory=dict)
    eta: float = Field(0.0, ge=0.0)  # DDIM only: 0 = deterministic DDIM, 1 = DDPM-like noise
    solver_order: Literal[1, 2, 3] = 2  # DPM-Solver++ only (2 = the "2M" solver recommended for guidance)
    batch_size: int = Field(16, ge=1)  # samples per forward (x the CFG passes needed)
    seed: int = 0  # base seed; every sample's own seed derives from (seed, cell, draw index)
    # Quality filter (synthetic_shards): keep a sample only when the joint classifier's probability for its
    # intended label is >= this threshold; None = keep everything.
    filter_threshold: float | None = Field(None, ge=0.0, le=1.0)
    # At most ceil(cap_factor x to_generate) draws per cell; the plan is reported unmet past that.
    cap_factor: float = Field(4.0, ge=1.0)

    @field_validator("guidance")
    @classmethod
    def _known_conditions(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(CONDITIONS))
        if unknown:
            raise ValueError(f"sampling.guidance: unknown conditions {unknown}; expected names from "
                             f"{sorted(CONDITIONS)}")
        return value
