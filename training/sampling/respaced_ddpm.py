"""The paper's sampler: ancestral DDPM respaced from 1000 to `steps` steps, learned variance (IDDPM/DiT).

Class-N-Diff §III-C samples "similar to DiT" with 250 steps: DiT's `create_diffusion("250")`, i.e. IDDPM's
`space_timesteps` (evenly strided, rounded training steps) and `SpacedDiffusion` (betas recomputed between
the kept steps so the respaced chain has the same alpha_bar at each kept step). The network sees the
original step index. With a 2C-channel model the variance is IDDPM's learned interpolation
exp(frac log beta_t + (1 - frac) log beta~_t), frac = (v + 1) / 2 (Nichol & Dhariwal 2021, eq. 15); with a
C-channel model it is the posterior variance beta~_t ("fixed small"). No clipping of x0 (latents are not
bounded; DiT samples with clip_denoised=False). Arithmetic in float64 as in IDDPM.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from training.diffusion.schedule import DiffusionSchedule


def space_timesteps(num_timesteps: int, steps: int) -> list[int]:
    """IDDPM's `space_timesteps(num_timesteps, [steps])`: `steps` evenly strided training steps, ascending."""
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"ddpm steps {steps}; expected 1..{num_timesteps}")
    if steps == 1:
        return [0]
    stride = (num_timesteps - 1) / (steps - 1)
    return sorted({round(i * stride) for i in range(steps)})  # round() half-to-even, as in IDDPM


@dataclass(frozen=True)
class RespacedSchedule:
    """Per respaced step i: the training step it stands for and the float64 coefficients of IDDPM."""

    timesteps: torch.Tensor  # (S,) long, ascending training steps
    betas: torch.Tensor
    alphas_cumprod: torch.Tensor
    posterior_log_variance_clipped: torch.Tensor
    posterior_mean_coef1: torch.Tensor
    posterior_mean_coef2: torch.Tensor

    @classmethod
    def build(cls, schedule: DiffusionSchedule, steps: int) -> RespacedSchedule:
        kept = space_timesteps(schedule.num_timesteps, steps)
        alphas_cumprod = schedule.alphas_cumprod[kept]
        previous = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
        betas = 1.0 - alphas_cumprod / previous
        variance = betas * (1.0 - previous) / (1.0 - alphas_cumprod)
        # IDDPM: the variance at step 0 is 0; its log is clipped to the next step's value
        log_clipped = torch.log(torch.cat([variance[1:2], variance[1:]])) if len(kept) > 1 else torch.log(betas)
        return cls(timesteps=torch.tensor(kept, dtype=torch.long), betas=betas, alphas_cumprod=alphas_cumprod,
                   posterior_log_variance_clipped=log_clipped,
                   posterior_mean_coef1=betas * previous.sqrt() / (1.0 - alphas_cumprod),
                   posterior_mean_coef2=(1.0 - previous) * (1.0 - betas).sqrt() / (1.0 - alphas_cumprod))

    def mean_and_log_variance(self, x_t: torch.Tensor, i: int, eps: torch.Tensor,
                              v: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of p(x_{i-1} | x_i) at respaced step i, in float64."""
        x = x_t.double()
        a = self.alphas_cumprod[i]
        x0 = (x - (1.0 - a).sqrt() * eps.double()) / a.sqrt()
        mean = self.posterior_mean_coef1[i] * x0 + self.posterior_mean_coef2[i] * x
        min_log = self.posterior_log_variance_clipped[i]
        if v is None:
            return mean, min_log.expand_as(mean)
        frac = (v.double() + 1.0) / 2.0
        return mean, frac * torch.log(self.betas[i]) + (1.0 - frac) * min_log
