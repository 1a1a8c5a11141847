"""Classifier-free guidance with one scale per condition, all passes in one batched forward.

With conditions c1..cK in the fixed order of `training.conditions.CONDITIONS` (label, skin_tone, sex) and
e_j = eps(x_t | c1..cj given, the others null), the guided prediction is the nested (compositional) CFG of
InstructPix2Pix (Brooks et al. 2023, eq. 3), generalised to K conditions:

    eps = e_0 + s_1 (e_1 - e_0) + s_2 (e_2 - e_1) + ... + s_K (e_K - e_{K-1})

so scale s_k pushes along the direction that condition k adds to the ones before it. All scales 1 give the
plain conditional prediction e_K, all 0 the unconditional e_0, a single common scale s the usual CFG
e_0 + s (e_K - e_0). Rewritten as sum_j w_j e_j with w_0 = 1 - s_1, w_j = s_j - s_{j+1}, w_K = s_K, only
the e_j with w_j != 0 are evaluated (one pass when every scale is 1).

Learned variance (2C output channels, IDDPM/DiT): the variance is not guided; as in DiT's sampling it comes
from the most conditioned pass evaluated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from training.conditions import CONDITIONS, null_index

EpsModel = Callable[[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]], torch.Tensor]


def guidance_weights(names: list[str], guidance: Mapping[str, float]) -> list[float]:
    """w_0..w_K of the nested CFG for conditions `names` (in order); unlisted conditions have scale 1."""
    unknown = sorted(set(guidance) - set(names))
    if unknown:
        raise ValueError(f"guidance for {unknown}, but the sampled conditions are {names}")
    scales = [float(guidance.get(name, 1.0)) for name in names]
    if not scales:
        return [1.0]
    return [1.0 - scales[0]] + [scales[j] - scales[j + 1] for j in range(len(scales) - 1)] + [scales[-1]]


def ordered_conditions(cond: Mapping[str, torch.Tensor]) -> list[str]:
    unknown = sorted(set(cond) - set(CONDITIONS))
    if unknown:
        raise ValueError(f"conditions {unknown} unknown; expected names from {sorted(CONDITIONS)}")
    return [name for name in CONDITIONS if name in cond]


def guided_prediction(model: EpsModel, x_t: torch.Tensor, t: torch.Tensor, cond: Mapping[str, torch.Tensor],
                      guidance: Mapping[str, float]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(guided eps, variance interpolation v or None for a C-channel model), from one forward pass."""
    names = ordered_conditions(cond)
    weights = guidance_weights(names, guidance)
    passes = [j for j, w in enumerate(weights) if w != 0.0] or [len(names)]
    batch = x_t.shape[0]
    conds = {name: torch.cat([cond[name] if i < j else torch.full_like(cond[name], null_index(name))
                              for j in passes]) for i, name in enumerate(names)}
    out = model(torch.cat([x_t] * len(passes)), torch.cat([t] * len(passes)), conds)
    channels = x_t.shape[1]
    if out.shape[1] not in (channels, 2 * channels) or out.shape[0] != batch * len(passes):
        raise ValueError(f"model output {tuple(out.shape)}; expected ({batch * len(passes)}, {channels} or "
                         f"{2 * channels}, ...) for input {tuple(x_t.shape)} x {len(passes)} CFG passes")
    chunks = out.split(batch)
    eps = sum(weights[j] * chunk[:, :channels] for j, chunk in zip(passes, chunks, strict=True))
    variance = chunks[-1][:, channels:] if out.shape[1] == 2 * channels else None
    return eps, variance
