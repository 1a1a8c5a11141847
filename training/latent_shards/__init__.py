"""The latent-shard format: WebDataset tars of VAE posteriors + labels, with a manifest.

Per split, `<split>-%06d.tar`; one sample per image, key = isic_id, three members:
  `<key>.json`       label, diagnosis, skin_tone_group, sex, age, site, split, image_sha256
  `<key>.mean.npy`   fp16 (C, h, w) posterior mean, already (mean - shift) * scaling_factor
  `<key>.std.npy`    fp16 (C, h, w) posterior std, times scaling_factor (zeros for the Haar wavelet)
`manifest.json` lists every shard (split, count, sha256, encoder id, resolution, dtype, latent shape).
"""

from training.latent_shards.format import LatentSample
from training.latent_shards.manifest import read_manifest, shard_paths
from training.latent_shards.read import iter_shard, read_latent_set
from training.latent_shards.verify import ShardError, verify_shard
from training.latent_shards.write import ShardInfo, write_shard

__all__ = [
    "LatentSample",
    "ShardError",
    "ShardInfo",
    "iter_shard",
    "read_latent_set",
    "read_manifest",
    "shard_paths",
    "verify_shard",
    "write_shard",
]
