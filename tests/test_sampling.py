"""Samplers, classifier-free guidance and per-sample seeding on analytic and tiny models."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import DDPMScheduler
from torch import nn

from training.diffusion.schedule import DiffusionSchedule
from training.sampling import (
    PerSampleNoise,
    RespacedSchedule,
    SamplingParams,
    guided_prediction,
    sample_latents,
    space_timesteps,
)

SCHEDULE = DiffusionSchedule()
SHAPE = (4, 4, 4)
LABEL_MEAN = torch.tensor([-1.0, 1.0, 0.0])  # benign, malignant, null
TONE_MEAN = torch.tensor([0.3, 0.0, -0.3, 0.1])  # A, B, C, null


def _alpha_bar(t: torch.Tensor) -> torch.Tensor:
    return SCHEDULE.alphas_cumprod[t].float().view(-1, 1, 1, 1)


class GaussianEps(nn.Module):
    """The exact eps-prediction E[eps | x_t] when x0 ~ N(mu(cond), sigma^2 I), mu from the condition tokens."""

    def __init__(self, sigma: float = 0.5, learn_sigma: bool = False) -> None:
        super().__init__()
        self.sigma, self.learn_sigma, self.calls = sigma, learn_sigma, []

    def mu(self, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        mu = LABEL_MEAN[cond["label"]]
        if "skin_tone" in cond:
            mu = mu + TONE_MEAN[cond["skin_tone"]]
        return mu.view(-1, 1, 1, 1)

    def forward(self, x, t, cond):
        self.calls.append(x.shape[0])
        a = _alpha_bar(t)
        eps = (1 - a).sqrt() * (x - a.sqrt() * self.mu(cond)) / (a * self.sigma**2 + 1 - a)
        if not self.learn_sigma:
            return eps
        return torch.cat([eps, torch.tanh(x)], dim=1)  # some variance interpolation v in (-1, 1)


class TinyEps(nn.Module):
    """A small random conditional network with learned variance (2C outputs), like the DiT's interface."""

    def __init__(self, channels: int = 4) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.inp = nn.Conv2d(channels, 16, 3, padding=1)
        self.label, self.tone, self.time = nn.Embedding(3, 16), nn.Embedding(4, 16), nn.Embedding(1000, 16)
        self.out = nn.Conv2d(16, 2 * channels, 3, padding=1)

    def forward(self, x, t, cond):
        h = self.inp(x) + (self.label(cond["label"]) + self.tone(cond["skin_tone"]) + self.time(t))[:, :, None, None]
        return self.out(torch.tanh(h))


def _cond(labels, tones):
    return {"label": torch.tensor(labels), "skin_tone": torch.tensor(tones)}


def test_space_timesteps_as_iddpm():
    kept = space_timesteps(1000, 250)
    assert len(kept) == 250 and kept[0] == 0 and kept[-1] == 999
    assert kept[:5] == [0, 4, 8, 12, 16]  # stride 999/249 = 4.012, rounded
    assert space_timesteps(1000, 1000) == list(range(1000))
    spaced = RespacedSchedule.build(SCHEDULE, 250)
    # respacing keeps alpha_bar at every kept step (IDDPM SpacedDiffusion)
    torch.testing.assert_close(torch.cumprod(1 - spaced.betas, 0), SCHEDULE.alphas_cumprod[kept])


def test_respaced_ddpm_step_equals_diffusers_learned_range():
    """Mean and learned variance of our float64 step = diffusers' DDPMScheduler (learned_range) on the same steps."""
    spaced = RespacedSchedule.build(SCHEDULE, 50)
    reference = DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                              variance_type="learned_range", clip_sample=False)
    reference.set_timesteps(timesteps=spaced.timesteps.flip(0).tolist())
    torch.manual_seed(1)
    x, eps, v = torch.randn(3, *SHAPE), torch.randn(3, *SHAPE), torch.rand(3, *SHAPE) * 2 - 1
    for i in (49, 30, 7, 1):
        t = int(spaced.timesteps[i])
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(i))
        mean, log_variance = spaced.mean_and_log_variance(x, i, eps, v)
        ours = (mean + torch.exp(0.5 * log_variance) * noise.double()).float()
        theirs = reference.step(torch.cat([eps, v], 1), t, x, generator=torch.Generator().manual_seed(i)).prev_sample
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("sampler,steps", [("ddpm", 250), ("ddim", 20), ("dpmsolver++", 20)])
def test_point_mass_data_is_recovered_exactly(sampler, steps):
    """sigma -> 0: the true noise of a single x0; every sampler must end on that x0."""
    model = GaussianEps(sigma=0.0, learn_sigma=sampler == "ddpm")
    cond = _cond([1, 0, 1], [2, 0, 3])
    x, stats = sample_latents(model, cond, [1, 2, 3], SHAPE, SamplingParams(sampler=sampler, steps=steps))
    torch.testing.assert_close(x, model.mu(cond).expand_as(x), rtol=0, atol=1e-4)
    assert stats.network_evaluations == steps and len(model.calls) == steps


def test_ddim_1000_steps_follows_the_exact_probability_flow():
    """Gaussian data: the DDIM ODE (eta 0) maps x_T to mu + sigma (x_T - sqrt(ab_T) mu) / sqrt(ab_T s^2 + 1 - ab_T)."""
    model, seeds = GaussianEps(sigma=0.5), list(range(16))
    cond = _cond([1] * 16, [2] * 16)
    x, _ = sample_latents(model, cond, seeds, SHAPE, SamplingParams(sampler="ddim", steps=1000, eta=0.0))
    x_T, a_T, mu = PerSampleNoise(seeds, SHAPE).draw(), float(SCHEDULE.alphas_cumprod[-1]), model.mu(cond)
    exact = mu + 0.5 * (x_T - math.sqrt(a_T) * mu) / math.sqrt(a_T * 0.25 + 1 - a_T)
    assert (x - exact).abs().max() < 1e-2
    # DPM-Solver++ at 25 steps lands close to the same map (DDIM at 25 steps is far worse)
    fast, _ = sample_latents(model, cond, seeds, SHAPE, SamplingParams(sampler="dpmsolver++", steps=25))
    assert (fast - exact).abs().max() < 0.06


def test_ddpm_250_samples_the_data_distribution():
    model, n = GaussianEps(sigma=0.5, learn_sigma=True), 64
    params = SamplingParams(sampler="ddpm", steps=250)
    x, _ = sample_latents(model, _cond([1] * n, [2] * n), list(range(n)), SHAPE, params)
    assert torch.isfinite(x).all()
    assert abs(x.mean().item() - 0.7) < 0.05  # mu = 1.0 - 0.3 (malignant, group C); 1024 values


def test_guidance_scale_one_is_conditional_and_zero_unconditional():
    model = TinyEps()
    torch.manual_seed(3)
    x, t, cond = torch.randn(3, *SHAPE), torch.tensor([10, 500, 999]), _cond([1, 0, 1], [2, 1, 0])
    null = _cond([2, 2, 2], [3, 3, 3])
    conditional, unconditional = model(x, t, cond), model(x, t, null)
    eps, v = guided_prediction(model, x, t, cond, {"label": 1.0, "skin_tone": 1.0})
    assert torch.equal(eps, conditional[:, :4]) and torch.equal(v, conditional[:, 4:])
    eps, _ = guided_prediction(model, x, t, cond, {"label": 0.0, "skin_tone": 0.0})
    torch.testing.assert_close(eps, unconditional[:, :4], rtol=0, atol=1e-6)
    # per-condition scales: e0 + 4 (e_label - e0) + 1.5 (e_label,tone - e_label)
    label_only = model(x, t, {"label": cond["label"], "skin_tone": null["skin_tone"]})[:, :4]
    eps, v = guided_prediction(model, x, t, cond, {"label": 4.0, "skin_tone": 1.5})
    e0, e2 = unconditional[:, :4], conditional[:, :4]
    expected = e0 + 4.0 * (label_only - e0) + 1.5 * (e2 - label_only)
    torch.testing.assert_close(eps, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(v, conditional[:, 4:], rtol=1e-5, atol=1e-6)  # variance: the conditional pass


def test_guidance_passes_run_as_one_batched_forward():
    model = GaussianEps(learn_sigma=True)
    x, t, cond = torch.randn(5, *SHAPE), torch.full((5,), 300), _cond([1] * 5, [2] * 5)
    for guidance, passes in [({}, 1), ({"label": 3.0, "skin_tone": 3.0}, 2), ({"label": 3.0, "skin_tone": 1.5}, 3)]:
        model.calls.clear()
        guided_prediction(model, x, t, cond, guidance)
        assert model.calls == [5 * passes]
    with pytest.raises(ValueError, match="sex"):
        guided_prediction(model, x, t, cond, {"sex": 2.0})


@pytest.mark.parametrize("params", [SamplingParams(sampler="ddpm", steps=10, guidance={"label": 2.0}),
                                    SamplingParams(sampler="ddim", steps=8, eta=1.0, guidance={"skin_tone": 0.5}),
                                    SamplingParams(sampler="dpmsolver++", steps=8, guidance={"label": 3.0})])
def test_a_sample_from_a_batch_equals_the_sample_generated_alone(params):
    model = TinyEps()
    seeds, cond = [11, 12, 13, 14], _cond([1, 0, 1, 0], [2, 1, 0, 3])
    batch, _ = sample_latents(model, cond, seeds, SHAPE, params)
    assert batch.shape == (4, *SHAPE) and torch.isfinite(batch).all()
    for i in (0, 2):
        alone, _ = sample_latents(model, {k: v[i:i + 1] for k, v in cond.items()}, [seeds[i]], SHAPE, params)
        torch.testing.assert_close(alone[0], batch[i], rtol=1e-5, atol=1e-5)
    other_seed, _ = sample_latents(model, {k: v[:1] for k, v in cond.items()}, [99], SHAPE, params)
    assert (other_seed[0] - batch[0]).abs().max() > 0.1


def test_params_reject_unknown_guidance_condition():
    with pytest.raises(ValueError, match="colour"):
        SamplingParams(guidance={"colour": 2.0})


@pytest.mark.parametrize("sampler,steps", [("ddpm", 6), ("dpmsolver++", 4)])
def test_project_dit_samples_finite_latents_reproducibly(sampler, steps):
    """The conditional DiT (training/dit.py), left in training mode on purpose: sampling must switch to eval
    (no random condition dropout) and back."""
    from training.dit import create_dit

    torch.manual_seed(0)
    model = create_dit("DiT-T/4", input_size=(8, 8), conditions=("label", "skin_tone")).train()
    params = SamplingParams(sampler=sampler, steps=steps, guidance={"label": 2.5, "skin_tone": 1.5})
    cond, seeds = _cond([1, 0, 1], [2, 0, 1]), [5, 6, 7]
    batch, stats = sample_latents(model, cond, seeds, (4, 8, 8), params)
    assert model.training and batch.shape == (3, 4, 8, 8) and torch.isfinite(batch).all()
    assert stats.network_evaluations == steps and stats.forward_passes == 3 * steps  # 3 nested CFG passes
    alone, _ = sample_latents(model, {k: v[1:2] for k, v in cond.items()}, seeds[1:2], (4, 8, 8), params)
    torch.testing.assert_close(alone[0], batch[1], rtol=1e-4, atol=1e-4)
