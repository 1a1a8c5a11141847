"""The `latent_shards` stage: every lesions image encoded once into per-split WebDataset shards.

See docs/latents.md for the crop/resize policy, what is cached, the scaling and the cache keys.
"""
