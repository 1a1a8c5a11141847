"""The DiT/IDDPM training loss: ε-MSE plus the variational-bound term that trains the learned variance.

Nichol & Dhariwal 2021 (IDDPM) §3.1, as used by DiT: the model outputs ε̂ and v in [-1, 1]; the reverse
log-variance is v' log β_t + (1 - v') log β̃_t with v' = (v + 1) / 2 (the LEARNED_RANGE interpolation).
L = mean(‖ε − ε̂‖²) + L_vb, where L_vb is KL(q(x_{t-1}|x_t,x0) ‖ p(x_{t-1}|x_t)) in bits per dimension
for t > 0 and the discretized-Gaussian decoder NLL at t = 0, computed with the mean built from a
*detached* ε̂ so that L_vb only trains the variance (IDDPM's "stop gradient" on μ; DiT's `frozen_out`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from training.diffusion.schedule import DiffusionSchedule


@dataclass
class DiffusionLoss:
    loss: torch.Tensor  # (B,) mse + vb
    mse: torch.Tensor  # (B,)
    vb: torch.Tensor  # (B,) bits per dimension
    eps_hat: torch.Tensor  # (B, C, H, W), with gradients


def mean_flat(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=tuple(range(1, x.dim())))


def normal_kl(mean1: torch.Tensor, logvar1: torch.Tensor, mean2: torch.Tensor, logvar2: torch.Tensor) -> torch.Tensor:
    """KL(N(mean1, e^logvar1) ‖ N(mean2, e^logvar2)), elementwise, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def approx_standard_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    # The tanh approximation of Φ that IDDPM/DiT use; kept so losses match their numbers.
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def discretized_gaussian_log_likelihood(x: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:
    """log P(x) under N(means, e^{2 log_scales}) discretized into 255 bins on [-1, 1] (DDPM §3.3), elementwise."""
    centered = x - means
    inv_std = torch.exp(-log_scales)
    cdf_plus = approx_standard_normal_cdf(inv_std * (centered + 1.0 / 255.0))
    cdf_min = approx_standard_normal_cdf(inv_std * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_delta))


def model_log_variance(schedule: DiffusionSchedule, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """IDDPM learned range: interpolate log β̃_t (clipped) and log β_t by (v + 1) / 2."""
    min_log = schedule._at(schedule.posterior_log_variance_clipped, t, v)
    max_log = schedule._at(torch.log(schedule.betas), t, v)
    frac = (v + 1) / 2
    return frac * max_log + (1 - frac) * min_log


def p_mean_variance(schedule: DiffusionSchedule, model_output: torch.Tensor, x_t: torch.Tensor,
                    t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean, log-variance and x̂0 of p(x_{t-1} | x_t) from a (B, 2C, ...) learned-variance output."""
    eps, v = model_output.chunk(2, dim=1)
    x0_hat = schedule.predict_x0(x_t, eps, t)
    mean, _ = schedule.posterior(x0_hat, x_t, t)
    return mean, model_log_variance(schedule, v, t), x0_hat


def vb_terms_bpd(schedule: DiffusionSchedule, model_output: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor,
                 t: torch.Tensor) -> torch.Tensor:
    """(B,) variational-bound term in bits/dim: KL for t > 0, decoder NLL at t = 0."""
    true_mean, true_log_var = schedule.posterior(x0, x_t, t)
    mean, log_var, _ = p_mean_variance(schedule, model_output, x_t, t)
    kl = mean_flat(normal_kl(true_mean, true_log_var, mean, log_var)) / math.log(2.0)
    nll = -mean_flat(discretized_gaussian_log_likelihood(x0, mean, 0.5 * log_var)) / math.log(2.0)
    return torch.where(t == 0, nll, kl)


def diffusion_loss(schedule: DiffusionSchedule, model_output: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor,
                   noise: torch.Tensor, t: torch.Tensor) -> DiffusionLoss:
    """MSE(ε) + L_vb of a learned-variance model output (B, 2C, ...); computed in float32."""
    model_output, x0, x_t, noise = (v.float() for v in (model_output, x0, x_t, noise))
    channels = x_t.shape[1]
    if model_output.shape[1] != 2 * channels:
        raise ValueError(f"diffusion_loss: model output has {model_output.shape[1]} channels; expected 2 x {channels} "
                         f"(ε and the learned variance)")
    eps_hat, v = model_output[:, :channels], model_output[:, channels:]
    frozen = torch.cat([eps_hat.detach(), v], dim=1)  # L_vb trains only the variance
    vb = vb_terms_bpd(schedule, frozen, x0, x_t, t)
    mse = mean_flat((noise - eps_hat) ** 2)
    return DiffusionLoss(loss=mse + vb, mse=mse, vb=vb, eps_hat=eps_hat)
