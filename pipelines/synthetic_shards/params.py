"""Parameters of the `synthetic_shards` stage: the sampler settings plus how samples are packed."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from training.sampling.params import SamplingParams


class SyntheticShardsParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sampling: SamplingParams = SamplingParams()
    # Kept samples per shard, all of one cell. A shard is the unit of resumption: a crash loses at most the
    # shard being filled. Real profile: 1000 (about 8 MB of fp16 latents + 256-px PNGs per 100 samples).
    samples_per_shard: int = Field(32, ge=1)
    out: str = "synthetic_shards"
