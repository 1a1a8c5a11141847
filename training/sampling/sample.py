"""Sample latents with the (EMA) conditional eps-model: DDPM (respaced, learned variance), DDIM, DPM-Solver++.

`sample_latents` runs one batch from x_T ~ N(0, I) to x_0; each row has its own seed (seeding.py) and
classifier-free guidance per condition (guidance.py). It counts network evaluations per sample (one
evaluation = one batched forward of all CFG passes; `forward_passes` counts those passes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from training.diffusion.schedule import DiffusionSchedule
from training.sampling.guidance import EpsModel, guidance_weights, guided_prediction, ordered_conditions
from training.sampling.params import SamplingParams
from training.sampling.respaced_ddpm import RespacedSchedule
from training.sampling.seeding import PerSampleNoise
from training.sampling.solvers import ddim_scheduler, dpm_solver_scheduler


@dataclass(frozen=True)
class SampleStats:
    network_evaluations: int  # denoising steps that called the network
    forward_passes: int  # CFG passes per evaluation x evaluations (the cost in single-sample forwards)


def cfg_passes(cond: Mapping[str, torch.Tensor], guidance: Mapping[str, float]) -> int:
    weights = guidance_weights(ordered_conditions(cond), guidance)
    return max(1, sum(w != 0.0 for w in weights))


def sample_latents(model: EpsModel, cond: Mapping[str, torch.Tensor], seeds: Sequence[int],
                   shape: Sequence[int], params: SamplingParams, schedule: DiffusionSchedule | None = None,
                   device: torch.device | str = "cpu", progress: bool = False) -> tuple[torch.Tensor, SampleStats]:
    """Latents (B, *shape) float32 for conditions `cond` (name -> (B,) long tokens) and one seed per row.

    An nn.Module runs in eval mode (restored afterwards): in training mode the DiT drops conditions at
    random for CFG training, which would silently unguide samples.
    """
    was_training = isinstance(model, nn.Module) and model.training
    if was_training:
        model.eval()
    try:
        with torch.no_grad():
            return _sample(model, cond, seeds, shape, params, schedule or DiffusionSchedule(), device, progress)
    finally:
        if was_training:
            model.train()


def _sample(model: EpsModel, cond: Mapping[str, torch.Tensor], seeds: Sequence[int], shape: Sequence[int],
            params: SamplingParams, schedule: DiffusionSchedule, device: torch.device | str,
            progress: bool) -> tuple[torch.Tensor, SampleStats]:
    batch = len(seeds)
    cond = {name: value.to(device) for name, value in cond.items()}
    for name, value in cond.items():
        if value.shape != (batch,):
            raise ValueError(f"condition {name!r} of shape {tuple(value.shape)}; expected ({batch},) for "
                             f"{batch} seeds")
    noise = PerSampleNoise(seeds, shape, device)
    x = noise.draw()  # x_T

    def predict(x_t: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        t = torch.full((batch,), int(step), dtype=torch.long, device=device)
        return guided_prediction(model, x_t, t, cond, params.guidance)

    if params.sampler == "ddpm":
        spaced = RespacedSchedule.build(schedule, params.steps)
        order = range(len(spaced.timesteps) - 1, -1, -1)
        for i in tqdm(order, desc="ddpm", disable=not progress):
            eps, v = predict(x, int(spaced.timesteps[i]))
            mean, log_variance = spaced.mean_and_log_variance(x, i, eps, v)
            step_noise = noise.draw().double()  # drawn at every step, also the last, so streams stay aligned
            x = (mean + (torch.exp(0.5 * log_variance) * step_noise if i > 0 else 0.0)).float()
        evaluations = len(spaced.timesteps)
    elif params.sampler == "ddim":
        scheduler = ddim_scheduler(schedule, params.steps)
        for t in tqdm(scheduler.timesteps, desc="ddim", disable=not progress):
            eps, _ = predict(x, int(t))
            variance_noise = noise.draw() if params.eta > 0 else None
            x = scheduler.step(eps, t, x, eta=params.eta, variance_noise=variance_noise).prev_sample
        evaluations = len(scheduler.timesteps)
    elif params.sampler == "dpmsolver++":
        scheduler = dpm_solver_scheduler(schedule, params.steps, params.solver_order)
        for t in tqdm(scheduler.timesteps, desc="dpmsolver++", disable=not progress):
            eps, _ = predict(x, int(t))
            x = scheduler.step(eps, t, x).prev_sample
        evaluations = len(scheduler.timesteps)
    else:
        raise ValueError(f"sampler {params.sampler!r}; expected ddpm, ddim or dpmsolver++")
    return x.float(), SampleStats(evaluations, evaluations * cfg_passes(cond, params.guidance))
