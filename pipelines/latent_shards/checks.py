"""The stage's checks, as one report (the lead turns each outcome into a blocking asset check).

- manifest_hashes_match: every listed shard exists with the listed sha256; no unlisted shard lies beside them
- shards_whole: every shard reads to its end-of-archive block (a truncated shard is named)
- split_counts_match_lesions: per split, the shard keys are exactly the lesions ids (none lost, none doubled)
- manifest_counts_match_shards: the per-shard counts in the manifest are what the shards hold
- latents_finite: no NaN/Inf in any mean or std
- latent_stats_in_range: mean and std over all train-split latent values within the configured bounds
- reconstruction_psnr: decode(cached mean) vs the preprocessed image, mean PSNR >= psnr_min on a sample
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.file_hashes import file_digest
from pipelines.latent_shards.params import LatentChecksParams
from pipelines.latent_shards.preprocess import load_images, to_tensor
from pipelines.validation.report import ExpectationOutcome, ValidationReport
from training.latent_shards.manifest import read_manifest
from training.latent_shards.read import iter_shard
from training.latent_shards.verify import ShardError
from training.vae.quality import psnr, to_unit

SUITE = "latent_shards"


def _outcome(name: str, bad: list[str], observed: str | None = None, success: bool | None = None) -> ExpectationOutcome:
    return ExpectationOutcome(expectation=name, column=None, success=not bad if success is None else success,
                              unexpected_count=len(bad), unexpected_rows=bad[:20], observed=observed)




class _Scan:
    """One pass over every shard: keys per split, per-shard counts, non-finite keys, train statistics."""

    def __init__(self, folder: Path, manifest: dict, psnr_keys: set[str]):
        self.keys: dict[str, list[str]] = {}
        self.counts: dict[str, int] = {}
        self.broken: list[str] = []
        self.non_finite: list[str] = []
        self.sums = np.zeros(3)  # n, sum, sum of squares over train latent values (float64)
        self.psnr_latents: dict[str, np.ndarray] = {}
        for row in manifest["shards"]:
            path = folder / row["shard"]
            count = 0
            try:
                for sample in iter_shard(path):
                    count += 1
                    self._add(row["split"], sample, psnr_keys)
            except ShardError as error:
                self.broken.append(str(error))
            self.counts[row["shard"]] = count

    def _add(self, split: str, sample, psnr_keys: set[str]) -> None:
        self.keys.setdefault(split, []).append(sample.key)
        mean, std = sample.mean.astype(np.float64), sample.std.astype(np.float64)
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            self.non_finite.append(sample.key)
            return
        if split == "train":
            self.sums += (mean.size, mean.sum(), np.square(mean).sum())
        if sample.key in psnr_keys:
            self.psnr_latents[sample.key] = sample.mean


def _split_outcome(lesions: pd.DataFrame, scan: _Scan) -> ExpectationOutcome:
    bad, observed = [], []
    for split in sorted(set(lesions["split"]) | set(scan.keys)):
        expected = set(lesions.loc[lesions["split"] == split, "isic_id"])
        found = scan.keys.get(split, [])
        seen: set[str] = set()
        doubled = {k for k in found if k in seen or seen.add(k)}
        bad += [f"{split}: missing {k}" for k in sorted(expected - seen)]
        bad += [f"{split}: not in lesions {k}" for k in sorted(seen - expected)]
        bad += [f"{split}: doubled {k}" for k in sorted(doubled)]
        observed.append(f"{split} {len(found)} in shards / {len(expected)} in lesions")
    return _outcome("split_counts_match_lesions", bad, "; ".join(observed))


def _stats_outcome(scan: _Scan, params: LatentChecksParams) -> ExpectationOutcome:
    n, total, squares = scan.sums
    if n == 0:
        return _outcome("latent_stats_in_range", ["no finite train latents"])
    mean = total / n
    std = math.sqrt(max(squares / n - mean**2, 0.0))
    ok = abs(mean) <= params.mean_abs_max and params.std_min <= std <= params.std_max
    return _outcome("latent_stats_in_range", [], f"train mean {mean:.4f} (|.| <= {params.mean_abs_max}), std "
                    f"{std:.4f} (in [{params.std_min}, {params.std_max}])", success=ok)


def _psnr_outcome(lesions: pd.DataFrame, scan: _Scan, codec, data_root: Path, resolution: int,
                  params: LatentChecksParams) -> ExpectationOutcome:
    rows = lesions.set_index("isic_id").loc[sorted(scan.psnr_latents)]
    if rows.empty:
        return _outcome("reconstruction_psnr", ["no sampled latent could be read"])
    images = to_tensor(load_images([data_root / p for p in rows["image_path"]], resolution))
    latents = np.stack([scan.psnr_latents[k] for k in rows.index]).astype(np.float32)
    import torch

    decoded = codec.decode(torch.from_numpy(latents))
    values = psnr(to_unit(images), to_unit(decoded)).tolist()
    worst = sorted(zip(values, rows.index, strict=True))[:5]
    mean = float(np.mean(values))
    return _outcome("reconstruction_psnr", [f"{k} {v:.1f} dB" for v, k in worst] if mean < params.psnr_min else [],
                    f"mean {mean:.2f} dB over {len(values)} images (threshold {params.psnr_min} dB), worst "
                    f"{worst[0][0]:.2f} dB ({worst[0][1]})")


def check_latent_shards(lesions_path: Path, data_root: Path, shards_dir: Path, params: LatentChecksParams,
                        codec=None) -> ValidationReport:
    """All checks on the shards in `shards_dir` (the stage's `out/shards`); no `codec`: PSNR check skipped."""
    out_dir, data_root = Path(shards_dir), Path(data_root)
    lesions = pd.read_parquet(lesions_path)
    try:
        manifest = read_manifest(out_dir)
    except ValueError as error:
        return ValidationReport(SUITE, str(out_dir), [_outcome("manifest_readable", [str(error)])])
    outcomes = [_outcome("manifest_readable", [])]
    listed = {row["shard"]: row for row in manifest["shards"]}
    mismatched = [f"{name}: missing" if not (out_dir / name).is_file() else f"{name}: sha256 differs"
                  for name, row in listed.items()
                  if not (out_dir / name).is_file() or file_digest(out_dir / name) != row["sha256"]]
    mismatched += [f"{p.name}: not in the manifest" for p in sorted(out_dir.glob("*.tar")) if p.name not in listed]
    outcomes.append(_outcome("manifest_hashes_match", mismatched, f"{len(listed)} shards listed"))
    sample = lesions.sample(n=min(params.psnr_sample, len(lesions)), random_state=params.seed)
    scan = _Scan(out_dir, manifest, set(sample["isic_id"]))
    outcomes.append(_outcome("shards_whole", scan.broken, f"{len(listed) - len(scan.broken)}/{len(listed)} whole"))
    outcomes.append(_split_outcome(lesions, scan))
    miscounted = [f"{name}: manifest {row['count']}, shard {scan.counts[name]}" for name, row in listed.items()
                  if row["count"] != scan.counts[name]]
    outcomes.append(_outcome("manifest_counts_match_shards", miscounted))
    outcomes.append(_outcome("latents_finite", scan.non_finite))
    outcomes.append(_stats_outcome(scan, params))
    if codec is not None:
        if codec.encoder_id != manifest["encoder_id"]:
            outcomes.append(_outcome("reconstruction_psnr", [f"codec {codec.encoder_id} is not the shards' encoder "
                                                             f"{manifest['encoder_id']}"]))
        else:
            outcomes.append(_psnr_outcome(lesions, scan, codec, data_root, manifest["resolution"], params))
    return ValidationReport(SUITE, str(out_dir), outcomes)


def check_stage(lesions_path: Path, data_root: Path, vae_dir: Path, out_dir: Path, params: LatentChecksParams,
                device: str = "auto") -> ValidationReport:
    """The checks on the stage's outputs in `out_dir` (as given to run_latent_shards), with the codec named
    by `<vae_dir>/codec.json`: what the CLI and the asset checks call."""
    from pipelines.latent_shards.stage import output_paths
    from training.vae import CodecSpec, open_codec

    codec = open_codec(CodecSpec.read(Path(vae_dir) / "codec.json"), device)
    return check_latent_shards(lesions_path, data_root, output_paths(Path(out_dir))["shards"], params, codec)
