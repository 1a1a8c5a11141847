"""Sampling latents from the conditional DiT: DDPM-250 (the paper), DDIM, DPM-Solver++, per-condition CFG."""

from training.sampling.benchmark import benchmark_samplers
from training.sampling.guidance import guidance_weights, guided_prediction
from training.sampling.params import SAMPLERS, SamplingParams
from training.sampling.respaced_ddpm import RespacedSchedule, space_timesteps
from training.sampling.sample import SampleStats, cfg_passes, sample_latents
from training.sampling.seeding import PerSampleNoise, sample_seed

__all__ = ["SAMPLERS", "PerSampleNoise", "RespacedSchedule", "SampleStats", "SamplingParams", "benchmark_samplers",
           "cfg_passes", "guidance_weights", "guided_prediction", "sample_latents", "sample_seed", "space_timesteps"]
