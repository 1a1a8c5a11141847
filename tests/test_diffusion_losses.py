"""The DDPM schedule and the DiT/IDDPM loss against diffusers' DDPMScheduler and closed forms.

Tolerances: diffusers keeps its schedule in float32 and ours is float64, so the arrays themselves agree to
float32 precision (ᾱ_t to 1e-6 absolute). To compare the formulas (add_noise, posterior, learned-range
variance) without that rounding, the reference scheduler gets diffusers' own schedule recomputed in float64
(`scheduler64`); with float64 inputs they then agree to 1e-9 absolute.
"""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import DDPMScheduler

from training.diffusion.losses import (
    diffusion_loss,
    discretized_gaussian_log_likelihood,
    model_log_variance,
    p_mean_variance,
    vb_terms_bpd,
)
from training.diffusion.schedule import DiffusionSchedule

ATOL = 1e-6  # float32 schedule arrays
ATOL64 = 1e-9  # formulas, float64 schedule and inputs
SCHEDULE = DiffusionSchedule()
TIMESTEPS = torch.tensor([0, 1, 2, 10, 99, 250, 500, 750, 998, 999])


def scheduler(variance_type: str = "fixed_small", prediction_type: str = "epsilon") -> DDPMScheduler:
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
                         clip_sample=False, variance_type=variance_type, prediction_type=prediction_type)


def scheduler64(variance_type: str = "fixed_small", prediction_type: str = "epsilon") -> DDPMScheduler:
    """diffusers' scheduler with its linear schedule recomputed the diffusers way, but in float64."""
    reference = scheduler(variance_type, prediction_type)
    reference.betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    reference.alphas = 1.0 - reference.betas
    reference.alphas_cumprod = torch.cumprod(reference.alphas, dim=0)
    reference.one = torch.tensor(1.0, dtype=torch.float64)
    return reference


def test_schedule_matches_diffusers() -> None:
    reference = scheduler()
    assert SCHEDULE.betas.dtype == torch.float64
    torch.testing.assert_close(SCHEDULE.betas, reference.betas.double(), rtol=0, atol=1e-8)  # float32 betas
    torch.testing.assert_close(SCHEDULE.alphas_cumprod, reference.alphas_cumprod.double(), rtol=0, atol=ATOL)
    for t in range(1, 1000, 37):
        assert abs(float(SCHEDULE.posterior_variance[t]) - float(reference._get_variance(t))) < ATOL
        assert abs(float(SCHEDULE.posterior_variance[t]) - float(scheduler64()._get_variance(t))) < 1e-15
    assert float(SCHEDULE.posterior_variance[0]) == 0.0


def test_add_noise_matches_diffusers() -> None:
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(len(TIMESTEPS), 4, 8, 8, generator=g, dtype=torch.float64)
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    expected = scheduler64().add_noise(x0, noise, TIMESTEPS)
    torch.testing.assert_close(SCHEDULE.add_noise(x0, noise, TIMESTEPS), expected, rtol=0, atol=ATOL64)
    # against the float32 diffusers schedule: its sqrt(1 - ᾱ_1) rounding (~1e-6) times |ε| ~ 3 bounds the gap
    float32 = scheduler().add_noise(x0, noise, TIMESTEPS)
    torch.testing.assert_close(SCHEDULE.add_noise(x0, noise, TIMESTEPS), float32, rtol=0, atol=1e-5)


def _diffusers_step_mean(reference: DDPMScheduler, model_output: torch.Tensor, t: int, x_t: torch.Tensor,
                         log_variance: torch.Tensor | None) -> torch.Tensor:
    """The mean of diffusers' DDPM step: its sample minus the noise term rebuilt from the same generator."""
    prev = reference.step(model_output, t, x_t, generator=torch.Generator().manual_seed(t)).prev_sample
    if t == 0:
        return prev
    noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(t), dtype=x_t.dtype)
    if log_variance is None:
        std = reference._get_variance(t).double() ** 0.5
    else:
        std = torch.exp(0.5 * log_variance)
    return prev - std * noise


def test_posterior_mean_and_variance_match_diffusers() -> None:
    reference = scheduler64(prediction_type="sample")  # output = x0: diffusers' step is q(x_{t-1}|x_t, x0)
    g = torch.Generator().manual_seed(1)
    for t in TIMESTEPS.tolist():
        x0 = torch.randn(1, 4, 6, 6, generator=g, dtype=torch.float64)
        x_t = torch.randn(x0.shape, generator=g, dtype=torch.float64)
        mean, log_var = SCHEDULE.posterior(x0, x_t, torch.tensor([t]))
        torch.testing.assert_close(mean, _diffusers_step_mean(reference, x0, t, x_t, None), rtol=0, atol=ATOL64)
        if t > 0:
            assert abs(math.exp(float(log_var.flatten()[0])) - float(reference._get_variance(t))) < ATOL64


def test_predict_x0_inverts_add_noise_given_the_true_noise() -> None:
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(len(TIMESTEPS), 4, 8, 8, generator=g, dtype=torch.float64)
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    x_t = SCHEDULE.add_noise(x0, noise, TIMESTEPS)
    torch.testing.assert_close(SCHEDULE.predict_x0(x_t, noise, TIMESTEPS), x0, rtol=0, atol=1e-10)
    # float32 (training): the 1/√ᾱ_t ≈ 156 of t = 999 amplifies rounding, still within 1e-4
    x32 = SCHEDULE.predict_x0(x_t.float(), noise.float(), TIMESTEPS)
    torch.testing.assert_close(x32, x0.float(), rtol=0, atol=1e-4)


def test_learned_range_model_mean_and_variance_match_diffusers() -> None:
    reference = scheduler64(variance_type="learned_range")
    g = torch.Generator().manual_seed(3)
    for t in TIMESTEPS[1:].tolist():  # at t = 0 diffusers takes log(1e-20), IDDPM the clipped log β̃_1
        x_t = torch.randn(1, 4, 6, 6, generator=g, dtype=torch.float64)
        output = torch.cat([torch.randn(x_t.shape, generator=g, dtype=torch.float64),
                            torch.rand(x_t.shape, generator=g, dtype=torch.float64) * 2 - 1], dim=1)
        mean, log_var, _ = p_mean_variance(SCHEDULE, output, x_t, torch.tensor([t]))
        expected_log_var = reference._get_variance(t, output[:, 4:], "learned_range")
        torch.testing.assert_close(log_var, expected_log_var, rtol=0, atol=ATOL64)
        expected_mean = _diffusers_step_mean(reference, output, t, x_t, expected_log_var)
        torch.testing.assert_close(mean, expected_mean, rtol=0, atol=ATOL64)


def test_vb_term_is_the_gaussian_kl_in_bits() -> None:
    g = torch.Generator().manual_seed(4)
    t = torch.tensor([1, 40, 400, 999])
    x0 = torch.randn(4, 4, 6, 6, generator=g, dtype=torch.float64)
    x_t = SCHEDULE.add_noise(x0, torch.randn(x0.shape, generator=g, dtype=torch.float64), t)
    output = torch.cat([torch.randn(x0.shape, generator=g, dtype=torch.float64),
                        torch.rand(x0.shape, generator=g, dtype=torch.float64) * 2 - 1], dim=1)
    true_mean, true_log_var = SCHEDULE.posterior(x0, x_t, t)
    mean, log_var, _ = p_mean_variance(SCHEDULE, output, x_t, t)
    kl = torch.distributions.kl_divergence(
        torch.distributions.Normal(true_mean, (0.5 * true_log_var).exp().expand_as(true_mean)),
        torch.distributions.Normal(mean, (0.5 * log_var).exp()))
    expected = kl.mean(dim=(1, 2, 3)) / math.log(2.0)
    torch.testing.assert_close(vb_terms_bpd(SCHEDULE, output, x0, x_t, t), expected, rtol=1e-10, atol=0)


def test_decoder_nll_at_t0_is_the_discretized_gaussian() -> None:
    x = torch.tensor([-0.5, 0.0, 0.3, 0.9])
    means, log_scales = torch.tensor([-0.49, 0.01, 0.25, 0.95]), torch.full((4,), math.log(0.02))
    normal = torch.distributions.Normal(means.double(), log_scales.double().exp())
    exact = torch.log(normal.cdf(x.double() + 1 / 255) - normal.cdf(x.double() - 1 / 255))
    # the tanh approximation of Φ (IDDPM/DiT) is within 1e-3 of the exact CDF
    torch.testing.assert_close(discretized_gaussian_log_likelihood(x, means, log_scales).double(), exact,
                               rtol=0, atol=5e-3)
    edge = discretized_gaussian_log_likelihood(torch.tensor([-1.0, 1.0]), torch.tensor([-1.0, 1.0]),
                                               torch.full((2,), math.log(0.02)))
    torch.testing.assert_close(edge, torch.log(torch.tensor([0.5 + 0.0780, 0.5 + 0.0780])), rtol=0, atol=2e-3)


def test_perfect_model_has_zero_loss() -> None:
    """ε̂ = ε gives the true posterior mean; v = −1 gives the (clipped) posterior variance: MSE = KL = 0."""
    g = torch.Generator().manual_seed(5)
    t = torch.tensor([1, 20, 500, 999])
    x0 = torch.randn(4, 4, 8, 8, generator=g, dtype=torch.float64)
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    x_t = SCHEDULE.add_noise(x0, noise, t)
    loss = diffusion_loss(SCHEDULE, torch.cat([noise, -torch.ones_like(noise)], dim=1), x0, x_t, noise, t)
    assert float(loss.loss.abs().max()) < 1e-6
    assert float(model_log_variance(SCHEDULE, -torch.ones(1), torch.tensor([5])).exp()) == pytest.approx(
        float(SCHEDULE.posterior_variance[5]), rel=1e-6)


def test_mse_trains_eps_and_vb_trains_only_the_variance() -> None:
    g = torch.Generator().manual_seed(6)
    t = torch.tensor([0, 3, 300, 900])
    x0 = torch.randn(4, 4, 8, 8, generator=g)
    noise = torch.randn(x0.shape, generator=g)
    x_t = SCHEDULE.add_noise(x0, noise, t)
    output = torch.randn(4, 8, 8, 8, generator=g).clamp(-0.9, 0.9).requires_grad_()
    loss = diffusion_loss(SCHEDULE, output, x0, x_t, noise, t)
    (grad_vb,) = torch.autograd.grad(loss.vb.sum(), output, retain_graph=True)
    (grad_mse,) = torch.autograd.grad(loss.mse.sum(), output)
    assert float(grad_vb[:, :4].abs().max()) == 0.0 and float(grad_vb[:, 4:].abs().max()) > 0
    assert float(grad_mse[:, 4:].abs().max()) == 0.0
    # MSE gradient: d/dε̂ mean((ε − ε̂)²) = 2(ε̂ − ε)/n
    torch.testing.assert_close(grad_mse[:, :4], 2 * (output[:, :4].detach() - noise) / (4 * 8 * 8))
    torch.testing.assert_close(loss.loss, loss.mse + loss.vb)
