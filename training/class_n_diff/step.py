"""One Class-N-Diff training step on a micro-batch (paper §III-B, eq. 4; METHOD.md §3).

t ~ U{0..T-1}, ε ~ N(0, I), z_t = √ᾱ_t z0 + √(1-ᾱ_t) ε; the DiT predicts ε̂ and the variance;
x̂0 = (z_t − √(1-ᾱ_t) ε̂) / √ᾱ_t from the really noised latent, with gradients into the DiT (not the authors'
one-reverse-step-on-z0). A gate drawn with probability γ (one draw per micro-batch, as the paper's "either
... or" reads) picks the classifier input: x̂0, or the clean z0.

    L = L_diff + λ · L_cls(x̂0)   when the gate picks x̂0 (this term also trains the DiT)
    L = L_diff,  L_cls(z0) trains the classifier alone   otherwise

One backward pass does both: the classifier's parameters get ∇L_cls; the gradient that flows back through
x̂0 into the DiT is scaled to λ·∇ by `scale_gradient`, so the DiT sees exactly ∇(L_diff + λ L_cls(x̂0)).

`x0_hat_max_t` (a departure from the paper's text, in the direction of the authors' code, whose classifier
sees a one-step-denoised z0): within a micro-batch the gate gave to x̂0, samples with t above it show the
classifier z0 instead. Without it, the classifier gradient reaches the DiT multiplied by √(1-ᾱ_t)/√ᾱ_t (≈156
at t = 999), and on the demo joint training wrecks the generator (docs/experiment.md, "Class-N-Diff vs DiT").

The classifier normalises with GroupNorm (training/latent_classifier.py): it keeps no running statistics, so x̂0
far from the latent distribution (its 1/√ᾱ_t reaches ≈156 at t = 999) leaves nothing behind but its gradient, and
a sample's logit does not depend on the rest of its micro-batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from training.diffusion.losses import diffusion_loss
from training.diffusion.schedule import DiffusionSchedule
from training.latent_classifier import classification_loss


class _ScaleGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:  # noqa: ANN001
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: ANN001
        return grad * ctx.scale, None


def scale_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity in the forward pass; multiplies the gradient by `scale` in the backward pass."""
    return _ScaleGradient.apply(x, scale)


@dataclass
class StepResult:
    backward: torch.Tensor  # scalar to call backward() on (accumulation scales applied)
    loss_total: torch.Tensor  # L_diff + λ·L_cls·[gate picked x̂0], the paper's eq. 4 (detached)
    loss_diff: torch.Tensor
    mse: torch.Tensor
    vb: torch.Tensor
    loss_cls: torch.Tensor | None  # BCE of the classifier on its input; None when it did not run
    used_x0_hat: bool
    logits: torch.Tensor | None


@dataclass(frozen=True)
class StepNoise:
    """The random draws of one micro-batch, made on a seeded CPU generator so runs and resumes repeat."""

    t: torch.Tensor
    noise: torch.Tensor
    gate_u: float

    @classmethod
    def draw(cls, shape: torch.Size, num_timesteps: int, generator: torch.Generator) -> StepNoise:
        t = torch.randint(0, num_timesteps, (shape[0],), generator=generator)
        noise = torch.randn(shape, generator=generator)
        gate_u = float(torch.rand((), generator=generator))
        return cls(t=t, noise=noise, gate_u=gate_u)


def joint_step(dit: nn.Module, classifier: nn.Module | None, schedule: DiffusionSchedule, z0: torch.Tensor,
               conditions: Mapping[str, torch.Tensor], draws: StepNoise, *, gamma: float, lam: float,
               dit_scale: float = 1.0, classifier_scale: float = 1.0,
               generator: torch.Generator | None = None, x0_hat_max_t: int | None = None) -> StepResult:
    """Losses of one micro-batch. `dit_scale` / `classifier_scale` divide the two gradients for accumulation
    (1/grad_accum and 1/(grad_accum · classifier_update_every)); `generator` drives the CFG dropout."""
    t = draws.t.to(z0.device)
    noise = draws.noise.to(device=z0.device, dtype=z0.dtype)
    z_t = schedule.add_noise(z0, noise, t)
    output = dit(z_t, t, conditions, generator=generator)
    diff = diffusion_loss(schedule, output, z0, z_t, noise, t)
    loss_diff = diff.loss.mean()
    backward = loss_diff * dit_scale
    loss_total, loss_cls, logits, used = loss_diff.detach(), None, None, False
    if classifier is not None:
        used = draws.gate_u < gamma
        if used:
            x0_hat = schedule.predict_x0(z_t.float(), diff.eps_hat, t)
            if x0_hat_max_t is not None:  # above it x̂0 is noise amplified by 1/√ᾱ_t: those samples show z0
                x0_hat = torch.where((t <= x0_hat_max_t).view(-1, *[1] * (z0.dim() - 1)), x0_hat, z0.float())
            # backward weighs L_cls by classifier_scale; rescale what reaches the DiT to λ·dit_scale·∇
            logits = classifier(scale_gradient(x0_hat, lam * dit_scale / classifier_scale))
        else:
            logits = classifier(z0)
        loss_cls = classification_loss(logits, conditions["label"])
        backward = backward + loss_cls * classifier_scale
        loss_total = loss_total + (lam * loss_cls.detach() if used else 0.0)
        loss_cls, logits = loss_cls.detach(), logits.detach()
    return StepResult(backward=backward, loss_total=loss_total, loss_diff=loss_diff.detach(),
                      mse=diff.mse.mean().detach(), vb=diff.vb.mean().detach(), loss_cls=loss_cls,
                      used_x0_hat=used, logits=logits)
