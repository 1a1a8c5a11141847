"""A benign/malignant (× skin-tone group) sample grid during training, from the EMA DiT.

A short DDIM run (diffusers' `DDIMScheduler` on the training schedule: linear betas, 1000 steps) with optional
classifier-free guidance; the learned variance is not needed by DDIM. Rows are label × skin-tone group when
skin tone is a condition, else label; columns are samples. With a `decode` callable (latents -> images in
[-1, 1], e.g. the VAE decoder) the grid is an image grid; without one, the first three latent channels are
shown, min-max scaled, and the latents are saved beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from diffusers import DDIMScheduler
from safetensors.torch import save_file
from torch import nn
from torchvision.utils import save_image

from training.class_n_diff.data_order import generator_for
from training.conditions import CONDITIONS, VOCABULARY, null_index
from training.diffusion.schedule import DiffusionSchedule

Decode = Callable[[torch.Tensor], torch.Tensor]


def grid_rows(conditions: tuple[str, ...]) -> list[dict[str, int]]:
    """One dict of condition indices per grid row: label (benign, malignant) × skin-tone group if conditioned."""
    tones = list(range(CONDITIONS["skin_tone"])) if "skin_tone" in conditions else [None]
    return [{"label": label} | ({} if tone is None else {"skin_tone": tone}) for label in (0, 1) for tone in tones]


def row_names(rows: list[dict[str, int]]) -> list[str]:
    inverse = {name: {i: key for key, i in values.items()} for name, values in VOCABULARY.items()}
    return [" ".join(f"{k}={inverse[k][v]}" for k, v in row.items()) for row in rows]


@torch.no_grad()
def sample_latents(dit: nn.Module, schedule: DiffusionSchedule, conditions: dict[str, torch.Tensor],
                   shape: tuple[int, ...], *, steps: int, guidance: float, seed: int,
                   device: torch.device) -> torch.Tensor:
    """DDIM samples (B, C, H, W) for the given condition indices; guidance 1 = no classifier-free guidance."""
    scheduler = DDIMScheduler(num_train_timesteps=schedule.num_timesteps, beta_start=schedule.beta_start,
                              beta_end=schedule.beta_end, beta_schedule="linear", clip_sample=False)
    scheduler.set_timesteps(steps)
    was_training = dit.training
    dit.eval()
    x = torch.randn(shape, generator=generator_for("grid", seed)).to(device)
    conditions = {k: v.to(device) for k, v in conditions.items()}
    nulls = {k: torch.full_like(v, null_index(k)) for k, v in conditions.items()}
    channels = shape[1]
    for t in scheduler.timesteps:
        t_batch = torch.full((shape[0],), int(t), device=device, dtype=torch.long)
        if guidance == 1.0:
            eps = dit(x, t_batch, conditions)[:, :channels].float()
        else:
            both = {k: torch.cat([conditions[k], nulls[k]]) for k in conditions}
            out = dit(torch.cat([x, x]), torch.cat([t_batch, t_batch]), both)[:, :channels].float()
            cond, uncond = out.chunk(2)
            eps = uncond + guidance * (cond - uncond)
        x = scheduler.step(eps, int(t), x).prev_sample
    dit.train(was_training)
    return x


def save_sample_grid(dit: nn.Module, schedule: DiffusionSchedule, model_conditions: tuple[str, ...],
                     latent_shape: tuple[int, int, int], path: Path, *, per_row: int, steps: int, guidance: float,
                     seed: int, device: torch.device, decode: Decode | None = None) -> dict:
    """Write the grid PNG at `path` (and `<path>.safetensors` latents); returns a description for metadata."""
    rows = grid_rows(model_conditions)
    conditions = {name: torch.tensor([row[name] for row in rows for _ in range(per_row)])
                  for name in rows[0]}
    latents = sample_latents(dit, schedule, conditions, (len(rows) * per_row, *latent_shape), steps=steps,
                             guidance=guidance, seed=seed, device=device).float().cpu()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"latents": latents.contiguous()}, str(path.with_suffix(".safetensors")))
    if decode is not None:
        images = ((decode(latents).float().cpu().clamp(-1, 1) + 1) / 2)
        kind = "decoded"
    else:
        view = latents[:, :3] if latents.shape[1] >= 3 else latents[:, :1].expand(-1, 3, -1, -1)
        low, high = view.quantile(0.01), view.quantile(0.99)
        images = ((view - low) / (high - low + 1e-8)).clamp(0, 1)
        kind = "latent channels 0-2"
    save_image(images, str(path), nrow=per_row, padding=1)
    return {"path": str(path), "rows": row_names(rows), "per_row": per_row, "kind": kind, "steps": steps,
            "guidance": guidance}
