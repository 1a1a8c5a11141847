"""Sampler cost: images per second and network evaluations per image, for docs/benchmarks.md.

`benchmark_samplers` runs every configuration on the same conditions and per-sample seeds (so their
outputs can also be decoded and scored with the generation report's FID) after one untimed warm-up
batch. CFG passes are counted as single-sample forwards: a guided step with the label and skin-tone
scales != 1 costs 3 of them, evaluated in one batched forward.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import torch

from training.diffusion.schedule import DiffusionSchedule
from training.sampling.guidance import EpsModel
from training.sampling.params import SamplingParams
from training.sampling.sample import sample_latents


def _synchronize(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def benchmark_samplers(model: EpsModel, cond: Mapping[str, torch.Tensor], shape: Sequence[int],
                       configs: Sequence[SamplingParams], device: torch.device | str = "cpu",
                       schedule: DiffusionSchedule | None = None) -> list[dict]:
    """One row per config: sampler, steps, images/s, network evaluations and single-sample forwards per image,
    and the latents (N, *shape) on the CPU. N = len of the condition tensors, in batches of config.batch_size."""
    n = len(next(iter(cond.values())))
    rows = []
    for params in configs:
        warm = {k: v[: params.batch_size] for k, v in cond.items()}
        sample_latents(model, warm, list(range(len(warm["label"]))), shape, params, schedule, device)
        _synchronize(device)
        started, latents, passes = time.perf_counter(), [], 0
        for start in range(0, n, params.batch_size):
            part = {k: v[start:start + params.batch_size] for k, v in cond.items()}
            seeds = list(range(start, start + len(part["label"])))
            x, stats = sample_latents(model, part, seeds, shape, params, schedule, device)
            latents.append(x.cpu())
            passes += stats.forward_passes * len(seeds)
        _synchronize(device)
        seconds = time.perf_counter() - started
        rows.append({"sampler": params.sampler, "steps": params.steps, "guidance": dict(params.guidance),
                     "images": n, "seconds": round(seconds, 3), "images_per_second": round(n / seconds, 3),
                     "network_evaluations_per_image": stats.network_evaluations,
                     "single_sample_forwards_per_image": passes // n, "latents": torch.cat(latents)})
    return rows
