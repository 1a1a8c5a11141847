"""Synthetic latent shards: the generation plan sampled with the EMA DiT, filtered, decoded (METHOD.md §4)."""

from pipelines.synthetic_shards.generate import CellJob, CellSampler, cell_jobs
from pipelines.synthetic_shards.params import SyntheticShardsParams
from pipelines.synthetic_shards.shard_files import SyntheticSample, read_shard, write_shard
from pipelines.synthetic_shards.stage import SyntheticShardsOutputs, output_paths, run_synthetic_shards

__all__ = ["CellJob", "CellSampler", "SyntheticSample", "SyntheticShardsOutputs", "SyntheticShardsParams",
           "cell_jobs", "output_paths", "read_shard", "run_synthetic_shards", "write_shard"]
