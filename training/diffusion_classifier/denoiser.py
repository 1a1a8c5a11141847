"""The conditional denoiser as the classifier sees it: eps-prediction and its error in eps, x0 or v space.

Model interface (training/dit.py): `model(x_t [B,C,H,W], t [B] long, cond {name: [B] long}) -> [B,2C,H,W]`
with learned variance (the first C channels are eps_hat), or [B,C,H,W] for a plain eps-predictor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from training.diffusion.schedule import DiffusionSchedule

Denoiser = Callable[[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]], torch.Tensor]


@contextmanager
def eval_mode(model: Denoiser) -> Iterator[None]:
    """Dropout off while classifying or explaining; the caller's train/eval state is restored afterwards."""
    was_training = isinstance(model, torch.nn.Module) and model.training
    if isinstance(model, torch.nn.Module):
        model.eval()
    try:
        yield
    finally:
        if was_training:
            model.train()


def predict_eps(model: Denoiser, x_t: torch.Tensor, t: torch.Tensor, cond: dict[str, torch.Tensor]) -> torch.Tensor:
    """eps_hat (float32) from a model returning C (eps) or 2C (eps, variance) channels."""
    out = model(x_t, t, cond)
    channels = x_t.shape[1]
    if out.dim() != 4 or out.shape[0] != x_t.shape[0] or out.shape[2:] != x_t.shape[2:]:
        raise ValueError(f"denoiser output {tuple(out.shape)} for input {tuple(x_t.shape)}: "
                         "expected [B, C or 2C, H, W]")
    if out.shape[1] == 2 * channels:
        out = out[:, :channels]
    elif out.shape[1] != channels:
        raise ValueError(f"denoiser output has {out.shape[1]} channels for a {channels}-channel input: "
                         f"expected {channels} (eps) or {2 * channels} (eps + learned variance)")
    return out.float()


def error_space_weight(schedule: DiffusionSchedule, t: torch.Tensor, space: str) -> torch.Tensor:
    """Factor w(t) with ||target - prediction||^2 = w(t) ||eps - eps_hat||^2 for the same z_t.

    x0 = (z_t - sqrt(1-a) eps) / sqrt(a)  =>  w = (1-a)/a;   v = sqrt(a) eps - sqrt(1-a) x0  =>  w = 1/a.
    The factor depends on the trial only, so per-trial votes are the same in every space.
    """
    a = schedule.alphas_cumprod.to(t.device)[t]
    if space == "eps":
        return torch.ones_like(a, dtype=torch.float32)
    if space == "x0":
        return ((1.0 - a) / a).float()
    if space == "v":
        return (1.0 / a).float()
    raise ValueError(f"error_space {space!r}: expected 'eps', 'x0' or 'v'")
