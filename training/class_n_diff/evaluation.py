"""Validation during training: the latent classifier (accuracy, AUC, sensitivity, specificity at 0.5) and the
DiT's diffusion loss on held-out latents with fixed (seeded) t and ε, so values are comparable over steps."""

from __future__ import annotations

import math

import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from training.class_n_diff.data_order import generator_for
from training.diffusion.losses import diffusion_loss
from training.diffusion.schedule import DiffusionSchedule
from training.latent_set import LatentSet


def classifier_metrics(probabilities: torch.Tensor, labels: torch.Tensor, threshold: float = 0.5) -> dict:
    """Accuracy, AUC (None with a single class), sensitivity (malignant recall), specificity, BCE."""
    p, y = probabilities.double().cpu(), labels.long().cpu()
    predicted = (p >= threshold).long()
    positives, negatives = int((y == 1).sum()), int((y == 0).sum())
    bce = float(torch.nn.functional.binary_cross_entropy(p.clamp(1e-7, 1 - 1e-7), y.double()))
    return {
        "n": len(y),
        "accuracy": float((predicted == y).double().mean()),
        "auc": float(roc_auc_score(y.numpy(), p.numpy())) if positives and negatives else None,
        "sensitivity": float(((predicted == 1) & (y == 1)).sum() / positives) if positives else None,
        "specificity": float(((predicted == 0) & (y == 0)).sum() / negatives) if negatives else None,
        "bce": bce,
    }


@torch.no_grad()
def classifier_probabilities(classifier: nn.Module, latents: torch.Tensor, device: torch.device,
                             batch_size: int = 64) -> torch.Tensor:
    was_training = classifier.training
    classifier.eval()
    out = [torch.sigmoid(classifier(latents[i:i + batch_size].to(device)).float()).cpu()
           for i in range(0, len(latents), batch_size)]
    classifier.train(was_training)
    return torch.cat(out)


def validate_classifier(classifier: nn.Module, val_set: LatentSet, device: torch.device) -> dict:
    labels = val_set.conditions["label"]
    known = labels <= 1
    probabilities = classifier_probabilities(classifier, val_set.mean[known], device)
    return classifier_metrics(probabilities, labels[known])


@torch.no_grad()
def validation_diffusion_loss(dit: nn.Module, schedule: DiffusionSchedule, val_set: LatentSet,
                              conditions: tuple[str, ...], device: torch.device, seed: int,
                              max_samples: int = 256, batch_size: int = 64) -> dict:
    """Mean MSE(ε), L_vb and their sum over up to `max_samples` latents, t and ε fixed by `seed`."""
    was_training = dit.training
    dit.eval()
    n = min(len(val_set), max_samples)
    generator = generator_for("validation", seed)
    t_all = torch.randint(0, schedule.num_timesteps, (n,), generator=generator)
    noise_all = torch.randn((n, *val_set.mean.shape[1:]), generator=generator)
    totals = {"mse": 0.0, "vb": 0.0}
    for i in range(0, n, batch_size):
        z0 = val_set.mean[i:i + batch_size].to(device)
        t, noise = t_all[i:i + batch_size].to(device), noise_all[i:i + batch_size].to(device)
        z_t = schedule.add_noise(z0, noise, t)
        cond = {name: val_set.conditions[name][i:i + batch_size].to(device) for name in conditions}
        loss = diffusion_loss(schedule, dit(z_t, t, cond), z0, z_t, noise, t)
        totals["mse"] += float(loss.mse.sum())
        totals["vb"] += float(loss.vb.sum())
    dit.train(was_training)
    out = {k: v / n for k, v in totals.items()}
    out["loss"] = out["mse"] + out["vb"]
    return {k: (v if math.isfinite(v) else None) for k, v in out.items()}
