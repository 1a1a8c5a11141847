"""Counterfactual explanations (paper Section 2.3 "Intrinsic Explainability", Fig. 4, Appendix F).

Noise the input latent to t = counterfactual_t_fraction * T (0.3 for ISIC), then denoise it back to 0
twice with the same noise: under the factual class and under the counterfactual (other) class, each with
classifier-free guidance, Eq. 5: eps~ = (1 + w) eps(z, c) - w eps(z, null), w = guidance_scale (7.5 in
the paper; w = 0 is the plain conditional model). Only the varied condition is nulled in the
unconditional branch, so guidance pushes along that condition alone. The sampler is deterministic DDIM
(eta = 0), so the two outputs differ only by the class. The heat map is |factual - counterfactual|
averaged over image channels (the paper's absolute difference map for colour ISIC images): reconstruction
error common to both is cancelled; `heatmap_against="input"` gives |input - counterfactual| instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from training.conditions import null_index
from training.diffusion.schedule import DiffusionSchedule
from training.diffusion_classifier.denoiser import Denoiser, eval_mode, predict_eps
from training.diffusion_classifier.params import DiffusionClassifierParams
from training.diffusion_classifier.trials import COUNTERFACTUAL_STREAM, image_generator

Decode = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class CounterfactualExplanation:
    input: torch.Tensor  # (B, c, H, W) decode(z0)
    factual: torch.Tensor  # (B, c, H, W) decoded reconstruction under the factual class
    counterfactual: torch.Tensor  # (B, c, H, W) decoded reconstruction under the counterfactual class
    heatmap: torch.Tensor  # (B, H, W) mean over channels of |difference|
    factual_class: torch.Tensor  # (B,)
    counterfactual_class: torch.Tensor  # (B,)
    t_start: int


def ddim_timesteps(t_start: int, steps: int) -> list[int]:
    """Descending timesteps from t_start to 0, evenly spaced, at most `steps` of them."""
    grid = torch.linspace(t_start, 0, max(1, min(steps, t_start + 1)), dtype=torch.float64).round().long()
    return sorted({int(t) for t in grid} | {t_start}, reverse=True)


def guided_eps(model: Denoiser, z: torch.Tensor, t: torch.Tensor, classes: torch.Tensor, scale: float,
               condition: str, extra: dict[str, torch.Tensor]) -> torch.Tensor:
    """Eq. 5: (1 + w) eps(z, c) - w eps(z, null), in one forward of 2B rows (B when w = 0)."""
    if scale == 0.0:
        return predict_eps(model, z, t, {condition: classes, **extra})
    null = torch.full_like(classes, null_index(condition))
    cond = {condition: torch.cat([classes, null]), **{k: torch.cat([v, v]) for k, v in extra.items()}}
    eps = predict_eps(model, torch.cat([z, z]), torch.cat([t, t]), cond)
    conditional, unconditional = eps.chunk(2)
    return (1.0 + scale) * conditional - scale * unconditional


def ddim_denoise(model: Denoiser, z_t: torch.Tensor, timesteps: Sequence[int], classes: torch.Tensor, scale: float,
                 condition: str, schedule: DiffusionSchedule, extra: dict[str, torch.Tensor]) -> torch.Tensor:
    """Deterministic DDIM (eta = 0) from timesteps[0] to clean: z <- sqrt(a') x0_hat + sqrt(1 - a') eps~."""
    z = z_t
    for i, step in enumerate(timesteps):
        t = torch.full((z.shape[0],), step, dtype=torch.long, device=z.device)
        eps = guided_eps(model, z, t, classes, scale, condition, extra)
        x0 = schedule.predict_x0(z, eps, t)
        if i + 1 == len(timesteps):
            return x0
        a_prev = schedule.alphas_cumprod[timesteps[i + 1]].item()
        z = a_prev**0.5 * x0 + (1.0 - a_prev) ** 0.5 * eps
    return z


@torch.inference_mode()
def explain_counterfactual(model: Denoiser, latents: torch.Tensor, factual_class: torch.Tensor,
                           params: DiffusionClassifierParams, decode: Decode,
                           schedule: DiffusionSchedule | None = None, *,
                           counterfactual_class: torch.Tensor | None = None,
                           conditions: dict[str, torch.Tensor] | None = None,
                           image_ids: Sequence[int] | None = None) -> CounterfactualExplanation:
    """Factual reconstruction, counterfactual and heat map for latents (B, C, H, W).

    counterfactual_class defaults to the other class of a two-class condition (benign <-> malignant).
    """
    schedule = schedule or DiffusionSchedule()
    n = latents.shape[0]
    factual_class = factual_class.long().to(latents.device)
    if counterfactual_class is None:
        if len(params.classes) != 2:
            raise ValueError(f"counterfactual_class is needed for {len(params.classes)} classes {params.classes}")
        low, high = params.classes
        counterfactual_class = torch.where(factual_class == low, torch.full_like(factual_class, high),
                                           torch.full_like(factual_class, low))
    counterfactual_class = counterfactual_class.long().to(latents.device)
    ids = list(range(n)) if image_ids is None else [int(i) for i in image_ids]
    generators = [image_generator(params.seed, i, COUNTERFACTUAL_STREAM) for i in ids]
    noise = torch.stack([torch.randn(latents.shape[1:], generator=g) for g in generators])
    # paper Fig. 4: "For ISIC: t = 0.3" on t in [0, 1] -> step round(0.3 * T)
    t_start = min(schedule.num_timesteps - 1, round(params.counterfactual_t_fraction * schedule.num_timesteps))
    t = torch.full((n,), t_start, dtype=torch.long, device=latents.device)
    z_t = schedule.add_noise(latents.float(), noise.to(latents.device), t)
    steps = ddim_timesteps(t_start, params.counterfactual_steps)
    extra = {k: v.long().to(latents.device) for k, v in (conditions or {}).items()}
    both = {k: torch.cat([v, v]) for k, v in extra.items()}
    # factual and counterfactual trajectories travel in one batch
    with eval_mode(model):
        z0 = ddim_denoise(model, torch.cat([z_t, z_t]), steps, torch.cat([factual_class, counterfactual_class]),
                          params.guidance_scale, params.condition, schedule, both)
    images = decode(torch.cat([latents.float(), z0])).float()
    shown, factual, counterfactual = images[:n], images[n : 2 * n], images[2 * n :]
    reference = factual if params.heatmap_against == "factual" else shown
    heatmap = (reference - counterfactual).abs().mean(dim=1)
    return CounterfactualExplanation(input=shown, factual=factual, counterfactual=counterfactual, heatmap=heatmap,
                                     factual_class=factual_class, counterfactual_class=counterfactual_class,
                                     t_start=t_start)
