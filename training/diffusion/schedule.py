"""The DDPM schedule: 1000 steps, linear betas 1e-4..0.02 (Ho et al. 2020; METHOD.md §2), in float64.

Closed forms used by training (`add_noise`, `predict_x0`), by the variational-bound loss (the true
posterior q(x_{t-1} | x_t, x0)) and by the diffusion classifier. Computed in float64 like the DiT/IDDPM
code, cast to the input's dtype on use.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DiffusionSchedule:
    num_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02

    def __post_init__(self) -> None:
        betas = torch.linspace(self.beta_start, self.beta_end, self.num_timesteps, dtype=torch.float64)
        alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        previous = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
        object.__setattr__(self, "betas", betas)
        object.__setattr__(self, "alphas_cumprod", alphas_cumprod)
        object.__setattr__(self, "alphas_cumprod_prev", previous)
        # q(x_{t-1} | x_t, x0): variance and the two mean coefficients (DDPM eq. 7)
        variance = betas * (1.0 - previous) / (1.0 - alphas_cumprod)
        object.__setattr__(self, "posterior_variance", variance)
        # log variance clipped at t = 0, where the variance is 0 (as in IDDPM)
        object.__setattr__(self, "posterior_log_variance_clipped",
                           torch.log(torch.cat([variance[1:2], variance[1:]])))
        object.__setattr__(self, "posterior_mean_coef1", betas * previous.sqrt() / (1.0 - alphas_cumprod))
        object.__setattr__(self, "posterior_mean_coef2",
                           (1.0 - previous) * (1.0 - betas).sqrt() / (1.0 - alphas_cumprod))

    @staticmethod
    def _at(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """values[t] shaped (B, 1, 1, ...) to broadcast against `like`, in its dtype and device."""
        out = values.to(like.device)[t].to(like.dtype)
        return out.reshape(-1, *([1] * (like.dim() - 1)))

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """z_t = sqrt(a_bar_t) x0 + sqrt(1 - a_bar_t) eps."""
        a = self._at(self.alphas_cumprod, t, x0)
        return a.sqrt() * x0 + (1.0 - a).sqrt() * noise

    def predict_x0(self, x_t: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x0_hat = (z_t - sqrt(1 - a_bar_t) eps_hat) / sqrt(a_bar_t): the inverse of add_noise given eps."""
        a = self._at(self.alphas_cumprod, t, x_t)
        return (x_t - (1.0 - a).sqrt() * eps) / a.sqrt()

    def posterior(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and clipped log-variance of q(x_{t-1} | x_t, x0)."""
        mean = self._at(self.posterior_mean_coef1, t, x_t) * x0 + self._at(self.posterior_mean_coef2, t, x_t) * x_t
        return mean, self._at(self.posterior_log_variance_clipped, t, x_t)
