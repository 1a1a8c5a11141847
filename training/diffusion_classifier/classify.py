"""Classify latents with a conditional diffusion model: the paper's majority vote (Appendix A), batched.

One forward holds, for up to `images_per_forward` images, `chunk_size` trials each, under every class:
batch = images x trials x classes, the rows of one trial differing only in the class token, so every
class sees the same z_t = add_noise(z0, eps, t). Images leave the batch when they are decided (early
stop) or have used all trials, and the next images take their place at once, so the batch stays full.
`classify_naive` is the paper's loop (one forward per class per trial), the reference the batched vote
must equal.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from tqdm import tqdm

from training.diffusion.schedule import DiffusionSchedule
from training.diffusion_classifier.denoiser import Denoiser, error_space_weight, eval_mode, predict_eps
from training.diffusion_classifier.params import DiffusionClassifierParams
from training.diffusion_classifier.trials import TrialNoise, Trials, draw_trials, trial_timesteps
from training.diffusion_classifier.votes import (
    decided_exact,
    flip_probability,
    lowest_mean_error,
    majority,
    vote_entropy,
    vote_share,
)

log = logging.getLogger(__name__)


@dataclass
class DiffusionClassification:
    classes: tuple[int, ...]  # condition values, the column order of votes / mean_error / errors
    predicted: torch.Tensor  # (n,) predicted condition value
    votes: torch.Tensor  # (n, K) trials won per class
    trials_used: torch.Tensor  # (n,) trials computed
    network_evals: torch.Tensor  # (n,) samples through the network = K x trials_used
    vote_share: torch.Tensor  # (n,) fraction of the votes won by the prediction (confidence)
    vote_entropy: torch.Tensor  # (n,) bits; the uncertainty
    mean_error: torch.Tensor  # (n, K) mean error per class over the computed trials
    errors: torch.Tensor  # (n, K, N) error per class and trial; NaN where not computed
    timesteps: torch.Tensor  # (n, N) t of each trial

    def to_frame(self, keys: Sequence[str] | None = None) -> pd.DataFrame:
        """One row per image: key, prediction, votes per class, uncertainty and cost."""
        frame = pd.DataFrame({"key": list(keys) if keys is not None else range(self.predicted.numel()),
                              "predicted": self.predicted.numpy()})
        for column, value in enumerate(self.classes):
            frame[f"votes_{value}"] = self.votes[:, column].numpy()
            frame[f"mean_error_{value}"] = self.mean_error[:, column].numpy()
        frame["vote_share"] = self.vote_share.numpy()
        frame["vote_entropy"] = self.vote_entropy.numpy()
        frame["trials_used"] = self.trials_used.numpy()
        frame["network_evals"] = self.network_evals.numpy()
        return frame

    def summary(self) -> dict[str, float | int]:
        return {
            "images": int(self.predicted.numel()),
            "mean_trials_used": float(self.trials_used.double().mean()),
            "mean_network_evals": float(self.network_evals.double().mean()),
            "mean_vote_share": float(self.vote_share.double().mean()),
            "mean_vote_entropy_bits": float(self.vote_entropy.double().mean()),
        }


def _condition_rows(values: torch.Tensor, name: str, n: int) -> torch.Tensor:
    if values.shape != (n,):
        raise ValueError(f"condition {name!r} has shape {tuple(values.shape)}: expected ({n},), one token per latent")
    return values.long()


def _default_device(model: Denoiser, latents: torch.Tensor) -> torch.device:
    if isinstance(model, torch.nn.Module):
        for parameter in model.parameters():
            return parameter.device
    return latents.device


def _finalize(errors: torch.Tensor, timesteps: torch.Tensor, used: torch.Tensor,
              params: DiffusionClassifierParams) -> DiffusionClassification:
    """Decision and uncertainty from the computed trials (the first used[i] of each image)."""
    num_classes, n_trials = errors.shape[1], errors.shape[2]
    computed = torch.arange(n_trials)[None, :] < used[:, None]  # (n, N)
    filled = torch.where(computed[:, None, :], errors, torch.zeros_like(errors))
    winners = torch.nn.functional.one_hot(filled.argmin(dim=1), num_classes)  # (n, N, K); argmin: lowest index
    votes = (winners * computed[:, :, None]).sum(dim=1)
    mean_error = filled.sum(dim=2) / used[:, None].clamp_min(1)
    index = majority(votes) if params.mode == "majority" else lowest_mean_error(mean_error)
    classes = torch.tensor(params.classes, dtype=torch.long)
    return DiffusionClassification(
        classes=tuple(params.classes), predicted=classes[index], votes=votes, trials_used=used.clone(),
        network_evals=used * num_classes, vote_share=vote_share(votes), vote_entropy=vote_entropy(votes),
        mean_error=mean_error, errors=errors, timesteps=timesteps)


def _trials_for(image_ids: Sequence[int], index: int, latent_shape: tuple[int, ...],
                params: DiffusionClassifierParams, schedule: DiffusionSchedule) -> Trials:
    return draw_trials(int(image_ids[index]), params.n_trials, latent_shape, seed=params.seed,
                       stratified=params.stratified, t_range=params.t_range, num_timesteps=schedule.num_timesteps)


def _image_ids(image_ids: Sequence[int] | torch.Tensor | None, n: int) -> list[int]:
    ids = list(range(n)) if image_ids is None else [int(i) for i in image_ids]
    if len(ids) != n:
        raise ValueError(f"image_ids has {len(ids)} entries for {n} latents")
    return ids


def _trial_errors(model: Denoiser, z0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor,
                  extra: dict[str, torch.Tensor], params: DiffusionClassifierParams,
                  schedule: DiffusionSchedule) -> torch.Tensor:
    """(R, K) errors of R trials under each class, in ONE forward of R x K rows.

    Rows are ordered (trial, class): the K rows of a trial share z_t, t and eps; only the class differs.
    """
    num_classes, rows = len(params.classes), z0.shape[0]
    z_t = schedule.add_noise(z0, noise, t)
    cond = {params.condition: torch.tensor(params.classes, dtype=torch.long, device=z0.device).repeat(rows)}
    cond.update({name: values.repeat_interleave(num_classes) for name, values in extra.items()})
    with torch.autocast(z0.device.type, dtype=torch.bfloat16, enabled=params.autocast_bf16):
        eps_hat = predict_eps(model, z_t.repeat_interleave(num_classes, 0), t.repeat_interleave(num_classes), cond)
    err = (eps_hat - noise.repeat_interleave(num_classes, 0)).pow(2).flatten(1).mean(dim=1)
    return err.view(rows, num_classes) * error_space_weight(schedule, t, params.error_space)[:, None]


@torch.inference_mode()
def classify_latents(model: Denoiser, latents: torch.Tensor, params: DiffusionClassifierParams,
                     schedule: DiffusionSchedule | None = None, *,
                     conditions: dict[str, torch.Tensor] | None = None,
                     image_ids: Sequence[int] | torch.Tensor | None = None,
                     device: torch.device | str | None = None, progress: bool = True) -> DiffusionClassification:
    """Diffusion-classify `latents` (n, C, H, W), batched over images x trials x classes.

    `conditions`: other condition tokens per latent (e.g. skin_tone), given unchanged under every class.
    `image_ids`: seeds the trials of each latent (default: its position), so results do not depend on order.
    """
    schedule = schedule or DiffusionSchedule()
    n, latent_shape = latents.shape[0], tuple(latents.shape[1:])
    extra = {name: _condition_rows(v, name, n) for name, v in (conditions or {}).items()}
    if params.condition in extra:
        raise ValueError(f"conditions holds {params.condition!r}, the condition the classifier varies")
    ids = _image_ids(image_ids, n)
    device = torch.device(device) if device is not None else _default_device(model, latents)
    num_classes, n_trials = len(params.classes), params.n_trials

    errors = torch.full((n, num_classes, n_trials), float("nan"))
    timesteps = torch.zeros((n, n_trials), dtype=torch.long)
    used = torch.zeros(n, dtype=torch.long)
    slots = min(params.images_per_forward, n)
    slot_image = torch.full((slots,), -1, dtype=torch.long)
    slot_z0 = torch.zeros((slots, *latent_shape), device=device)
    slot_t = torch.zeros((slots, n_trials), dtype=torch.long, device=device)
    slot_noise: list[TrialNoise | None] = [None] * slots
    slot_votes = torch.zeros((slots, num_classes), dtype=torch.long)
    next_image = 0

    def load(slot: int) -> None:
        nonlocal next_image
        if next_image >= n:
            slot_image[slot] = -1
            return
        t = trial_timesteps(ids[next_image], n_trials, seed=params.seed, stratified=params.stratified,
                            t_range=params.t_range, num_timesteps=schedule.num_timesteps)
        slot_image[slot] = next_image
        slot_z0[slot] = latents[next_image].to(device, torch.float32)
        slot_t[slot] = t.to(device)
        slot_noise[slot] = TrialNoise(ids[next_image], latent_shape, params.seed)
        slot_votes[slot] = 0
        timesteps[next_image] = t
        next_image += 1

    for slot in range(slots):
        load(slot)
    bar = tqdm(total=n, desc="diffusion classifier", unit="img", disable=not progress, leave=False)
    with eval_mode(model):
        while (slot_image >= 0).any():
            active = torch.nonzero(slot_image >= 0).flatten()
            start = used[slot_image[active]]  # trials already computed per active image
            # once the queue is empty, fewer images are in flight: give each more trials per forward so
            # the forward keeps images_per_forward x chunk_size x K rows
            chunk = max(params.chunk_size, params.images_per_forward * params.chunk_size // active.numel())
            offsets = torch.arange(chunk)
            trial = start[:, None] + offsets[None, :]
            keep = trial < n_trials
            row_slot = active[:, None].expand_as(trial)[keep]  # (R,) slot of each computed trial
            row_trial = trial[keep]
            row_slot_d, row_trial_d = row_slot.to(device), row_trial.to(device)
            t = slot_t[row_slot_d, row_trial_d]
            counts = keep.sum(dim=1).tolist()
            noise = torch.cat([slot_noise[slot].take(int(first), count)
                               for slot, first, count in zip(active.tolist(), start.tolist(), counts, strict=True)
                               if count]).to(device)
            images = slot_image[row_slot]
            err = _trial_errors(model, slot_z0[row_slot_d], noise, t,
                                {name: values[images].to(device) for name, values in extra.items()},
                                params, schedule).cpu()
            errors[images, :, row_trial] = err
            slot_votes.index_add_(0, row_slot, torch.nn.functional.one_hot(err.argmin(dim=1), num_classes))
            used.index_add_(0, slot_image[active], torch.tensor(counts))

            remaining = n_trials - used[slot_image[active]]
            done = remaining == 0
            if params.early_stop == "exact":
                done |= decided_exact(slot_votes[active], remaining)
            elif params.early_stop == "predictive":
                done |= flip_probability(slot_votes[active], remaining) < params.early_stop_risk
            for slot in active[done].tolist():
                load(slot)
            bar.update(int(done.sum()))
    bar.close()
    result = _finalize(errors, timesteps, used, params)
    log.info("diffusion classifier: %d latents, %.1f network evaluations per latent", n,
             result.network_evals.double().mean())
    return result


@torch.inference_mode()
def classify_naive(model: Denoiser, latents: torch.Tensor, params: DiffusionClassifierParams,
                   schedule: DiffusionSchedule | None = None, *,
                   conditions: dict[str, torch.Tensor] | None = None,
                   image_ids: Sequence[int] | torch.Tensor | None = None,
                   device: torch.device | str | None = None, progress: bool = True) -> DiffusionClassification:
    """The paper's loop (Appendix A): per image, per trial, per class one forward of batch 1; all N trials."""
    schedule = schedule or DiffusionSchedule()
    n, latent_shape = latents.shape[0], tuple(latents.shape[1:])
    extra = {name: _condition_rows(v, name, n) for name, v in (conditions or {}).items()}
    ids = _image_ids(image_ids, n)
    device = torch.device(device) if device is not None else _default_device(model, latents)
    num_classes, n_trials = len(params.classes), params.n_trials
    errors = torch.full((n, num_classes, n_trials), float("nan"))
    timesteps = torch.zeros((n, n_trials), dtype=torch.long)
    images = tqdm(range(n), desc="diffusion classifier (naive)", unit="img", disable=not progress, leave=False)
    with eval_mode(model):
        for i in images:
            _naive_image(model, latents[i : i + 1].to(device, torch.float32),
                         _trials_for(ids, i, latent_shape, params, schedule),
                         {name: values[i : i + 1].to(device) for name, values in extra.items()},
                         params, schedule, errors[i], timesteps[i])
    return _finalize(errors, timesteps, torch.full((n,), n_trials, dtype=torch.long), params)


def _naive_image(model: Denoiser, z0: torch.Tensor, trials: Trials, extra: dict[str, torch.Tensor],
                 params: DiffusionClassifierParams, schedule: DiffusionSchedule,
                 errors: torch.Tensor, timesteps: torch.Tensor) -> None:
    """Fill errors (K, N) and timesteps (N,) of one image, one forward per class per trial."""
    device = z0.device
    timesteps.copy_(trials.t)
    for k in range(params.n_trials):
        t = trials.t[k : k + 1].to(device)
        noise = trials.noise[k : k + 1].to(device)
        z_t = schedule.add_noise(z0, noise, t)
        weight = error_space_weight(schedule, t, params.error_space)
        for c, token in enumerate(params.classes):
            cond = {params.condition: torch.tensor([token], device=device), **extra}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=params.autocast_bf16):
                eps_hat = predict_eps(model, z_t, t, cond)
            errors[c, k] = ((eps_hat - noise).pow(2).mean() * weight[0]).cpu()
