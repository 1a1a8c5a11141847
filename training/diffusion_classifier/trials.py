"""The (eps, t) trials of one image: the same pairs are used for every class (paper Section 2.2).

t scheme (`stratified=True`): trial k falls in stratum (rev_m(k) + r) mod 2^m of 2^m equal strata of
t_range, where m = ceil(log2 n_trials), rev_m reverses the m bits of k and r is a random rotation per
image, and is jittered uniformly inside it. So the first 2^j trials hold exactly one t in each of 2^j
equal strata: every prefix is spread over the range, which is what early stopping and the accuracy-vs-N
ablation (prefixes of one run) need, and the full set of n trials sits in n distinct strata.
`stratified=False` draws t i.i.d. uniform, as the paper's pseudocode (`t = rand(0, 1)`, Appendix A).

Randomness comes from a CPU generator seeded by (seed, image id): the trials of an image do not depend
on the device, on the batch it travels in, or on the other images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Trials:
    t: torch.Tensor  # (N,) long timestep indices in [0, num_timesteps)
    noise: torch.Tensor  # (N, C, H, W) float32 eps


def bit_reversed_order(n: int) -> torch.Tensor:
    """rev_m(k) for k < n, m = ceil(log2 n): the stratum index of trial k among 2^m strata."""
    m = max(1, math.ceil(math.log2(n))) if n > 1 else 1
    k = torch.arange(n)
    out = torch.zeros(n, dtype=torch.long)
    for bit in range(m):
        out |= ((k >> bit) & 1) << (m - 1 - bit)
    return out


def trial_fractions(n: int, generator: torch.Generator, stratified: bool) -> torch.Tensor:
    """n positions in [0, 1): jittered strata in bit-reversed order, or i.i.d. uniform.

    The stratum sequence is rotated by a random whole number of strata (mod 2^m), which keeps one t per
    stratum in every 2^j-prefix and makes the first trial uniform over the range (unrotated, trial 0
    would always sit in the lowest stratum, t ~ 0).
    """
    jitter = torch.rand(n, generator=generator, dtype=torch.float64)
    if not stratified:
        return jitter
    strata = 2 ** max(1, math.ceil(math.log2(n))) if n > 1 else 2
    rotation = torch.randint(0, strata, (1,), generator=generator)
    return (((bit_reversed_order(n) + rotation) % strata).double() + jitter) / strata


def timesteps_from_fractions(fractions: torch.Tensor, t_range: tuple[float, float], num_timesteps: int) -> torch.Tensor:
    """Positions in [0, 1) -> integer timesteps covering [floor(low*T), ceil(high*T)) evenly."""
    first = math.floor(t_range[0] * num_timesteps)
    stop = min(num_timesteps, max(first + 1, math.ceil(t_range[1] * num_timesteps)))
    t = first + torch.floor(fractions * (stop - first)).long()
    return t.clamp(first, stop - 1)


NOISE_BLOCK = 8  # eps is drawn lazily, 8 trials at a time: an early-stopped image draws few blocks
COUNTERFACTUAL_STREAM = 2**31  # stream of the counterfactual noise; 0 = t, 1 + b = eps block b


def image_generator(seed: int, image_id: int, stream: int = 0) -> torch.Generator:
    # SeedSequence mixes (seed, id, stream) so that neighbouring ids give unrelated streams.
    entropy = [seed, image_id, stream]
    state = int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0]) & (2**63 - 1)
    return torch.Generator().manual_seed(state)


class TrialNoise:
    """The eps of one image's trials, drawn on demand in blocks of NOISE_BLOCK (each block its own seed),
    so trial k's eps is the same whichever chunks ask for it."""

    def __init__(self, image_id: int, latent_shape: tuple[int, ...], seed: int) -> None:
        self.image_id, self.latent_shape, self.seed = image_id, latent_shape, seed
        self.blocks: list[torch.Tensor] = []

    def take(self, first: int, count: int) -> torch.Tensor:
        """eps of trials first .. first + count - 1, (count, C, H, W) float32."""
        needed = -(-(first + count) // NOISE_BLOCK)
        while len(self.blocks) < needed:
            generator = image_generator(self.seed, self.image_id, 1 + len(self.blocks))
            self.blocks.append(torch.randn((NOISE_BLOCK, *self.latent_shape), generator=generator))
        start = first // NOISE_BLOCK
        offset = first - start * NOISE_BLOCK
        return torch.cat(self.blocks[start:needed])[offset : offset + count]


def trial_timesteps(image_id: int, n_trials: int, *, seed: int, stratified: bool, t_range: tuple[float, float],
                    num_timesteps: int) -> torch.Tensor:
    """The n_trials timesteps of one image (stream 0 of its generator)."""
    fractions = trial_fractions(n_trials, image_generator(seed, image_id), stratified)
    return timesteps_from_fractions(fractions, t_range, num_timesteps)


def draw_trials(image_id: int, n_trials: int, latent_shape: tuple[int, ...], *, seed: int, stratified: bool,
                t_range: tuple[float, float], num_timesteps: int) -> Trials:
    """All n_trials (eps, t) pairs of one image at once (the naive loop and tests; the batched vote draws
    eps lazily through TrialNoise, with the same values)."""
    t = trial_timesteps(image_id, n_trials, seed=seed, stratified=stratified, t_range=t_range,
                        num_timesteps=num_timesteps)
    return Trials(t=t, noise=TrialNoise(image_id, latent_shape, seed).take(0, n_trials))
