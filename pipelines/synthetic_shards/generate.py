"""Fill one shard of one cell: sample in batches, filter with the joint classifier, decode the kept ones.

Draw j of a cell is always the sample of seed `sample_seed(seed, cell, j)`; a shard covers the draws
[draw_start, draw_end) and keeps those that pass the filter. Batches never run past the shard: a batch asks
for what the shard still needs (divided by the keep rate seen so far in this shard, so a strict filter
samples wider), and draws after the one that fills the shard are discarded, not carried over. A shard's
content is then a function of (cell, draw_start) alone, so a resumed run regenerates exactly the shard it
lost.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from pipelines.generation_plan.plan import SKIN_TONE_GROUPS
from pipelines.synthetic_shards.shard_files import SyntheticSample, image_to_uint8
from training.conditions import encode
from training.diffusion.schedule import DiffusionSchedule
from training.sampling import SamplingParams, sample_latents, sample_seed
from training.sampling.guidance import EpsModel

Decoder = Callable[[torch.Tensor], torch.Tensor]  # scaled latents -> images in [-1, 1]
Classifier = Callable[[torch.Tensor], torch.Tensor]  # scaled latents -> probability of malignant


@dataclass(frozen=True)
class CellJob:
    cell: str
    label: int
    skin_tone_group: str
    sex: str | None
    to_generate: int
    max_draws: int  # the cap: ceil(cap_factor x to_generate)

    def conditions(self, names: Sequence[str], n: int) -> dict[str, torch.Tensor]:
        """Condition tokens for n samples; a condition the plan does not fix (sex when not by_sex) is null."""
        values = {"label": self.label, "skin_tone": self.skin_tone_group, "sex": self.sex}
        return {name: torch.full((n,), encode(name, values[name]), dtype=torch.long) for name in names}


@dataclass
class CellSampler:
    """Turns the draws of one cell into kept samples; `forward_passes` accumulates the network cost."""

    model: EpsModel
    decode: Decoder
    sampling: SamplingParams
    model_version: str
    latent_shape: tuple[int, int, int]
    condition_names: tuple[str, ...]
    classify: Classifier | None = None
    schedule: DiffusionSchedule = field(default_factory=DiffusionSchedule)
    device: torch.device | str = "cpu"
    forward_passes: int = 0  # sum over batches of batch size x CFG passes x steps
    network_evaluations_per_sample: int = 0

    def __post_init__(self) -> None:
        if self.sampling.filter_threshold is not None and self.classify is None:
            raise ValueError("sampling.filter_threshold is set but no classifier was given to filter with")

    def fill_shard(self, job: CellJob, draw_start: int, capacity: int) -> tuple[list[SyntheticSample], int, int]:
        """(kept samples, draw_end, dropped) for at most `capacity` kept samples from draw `draw_start` on."""
        kept: list[SyntheticSample] = []
        dropped, draw = 0, draw_start
        while len(kept) < capacity and draw < job.max_draws:
            drawn = draw - draw_start
            rate = len(kept) / drawn if drawn else 1.0
            want = math.ceil((capacity - len(kept)) / max(rate, 1.0 / self.sampling.batch_size))
            n = min(self.sampling.batch_size, want, job.max_draws - draw)
            seeds = [sample_seed(self.sampling.seed, job.cell, draw + i) for i in range(n)]
            latents, stats = sample_latents(self.model, job.conditions(self.condition_names, n), seeds,
                                            self.latent_shape, self.sampling, self.schedule, self.device)
            self.forward_passes += n * stats.forward_passes
            self.network_evaluations_per_sample = stats.network_evaluations
            probability = self._label_probability(latents, job.label)
            keep, used = [], 0
            for i in range(n):
                if len(kept) + len(keep) == capacity:
                    break  # the shard is full: later draws of this batch are discarded
                used += 1
                passes = probability is None or probability[i] >= self.sampling.filter_threshold
                if passes:
                    keep.append(i)
                else:
                    dropped += 1
            if keep:
                images = self.decode(latents[keep]).detach().float().cpu().numpy()
                for row, i in enumerate(keep):
                    kept.append(self._sample(job, draw + i, seeds[i], latents[i], images[row],
                                             None if probability is None else float(probability[i])))
            draw += used
        return kept, draw, dropped

    def _label_probability(self, latents: torch.Tensor, label: int) -> np.ndarray | None:
        if self.sampling.filter_threshold is None:
            return None
        malignant = self.classify(latents).detach().float().cpu().reshape(-1).numpy()
        if malignant.shape != (latents.shape[0],):
            raise ValueError(f"classifier returned shape {malignant.shape}; expected ({latents.shape[0]},)")
        return malignant if label == 1 else 1.0 - malignant

    def _sample(self, job: CellJob, draw: int, seed: int, latent: torch.Tensor, image: np.ndarray,
                probability: float | None) -> SyntheticSample:
        s = self.sampling
        attributes = {
            "key": f"synthetic-{job.cell}-{draw:08d}",
            "label": job.label,
            "skin_tone_group": job.skin_tone_group,
            "sex": job.sex,
            "split": "synthetic",
            "synthetic": True,
            "provenance": {
                "model_version": self.model_version, "seed": seed, "cell": job.cell, "draw_index": draw,
                "sampler": s.sampler, "steps": s.steps, "eta": s.eta if s.sampler == "ddim" else None,
                "solver_order": s.solver_order if s.sampler == "dpmsolver++" else None,
                "guidance": {name: float(s.guidance.get(name, 1.0)) for name in self.condition_names},
                "condition": {name: int(v[0]) for name, v in job.conditions(self.condition_names, 1).items()},
                "filter_threshold": s.filter_threshold, "label_probability": probability,
            },
        }
        return SyntheticSample(key=attributes["key"], latent=latent.cpu().numpy().astype(np.float16),
                               attributes=attributes, image=image_to_uint8(image))


def cell_jobs(plan, cap_factor: float) -> list[CellJob]:
    """The plan's cells with something to generate, in plan order."""
    jobs = []
    for row in plan.itertuples(index=False):
        if int(row.to_generate) <= 0:
            continue
        if row.skin_tone_group not in SKIN_TONE_GROUPS:
            raise ValueError(f"plan cell {row.cell!r}: skin_tone_group {row.skin_tone_group!r}; expected one of "
                             f"{SKIN_TONE_GROUPS}")
        sex = row.sex if isinstance(row.sex, str) else None
        jobs.append(CellJob(cell=row.cell, label=int(row.label), skin_tone_group=row.skin_tone_group, sex=sex,
                            to_generate=int(row.to_generate),
                            max_draws=math.ceil(cap_factor * int(row.to_generate))))
    return jobs
