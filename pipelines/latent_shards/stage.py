"""The `latent_shards` stage: lesions table + codec -> per-split WebDataset shards + manifest.

1. Encode what the content-addressed cache lacks (cache.py, encode.py): a re-run with no new images
   decodes and encodes nothing; k new images cost exactly k encodings.
2. Assemble every split's shards from the cache, sorted by isic_id, `samples_per_shard` per tar,
   byte-deterministic; a shard whose bytes are unchanged is not rewritten.
3. Write manifest.json (atomically, after the shards), then remove shards the manifest no longer lists.
   A crash before the manifest leaves shards whose hashes disagree with it: the checks fail loudly.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipelines.atomic_files import write_json
from pipelines.latent_shards.cache import LatentCache
from pipelines.latent_shards.encode import encode_missing
from pipelines.latent_shards.params import LatentShardsParams
from pipelines.latent_shards.preprocess import POLICY
from training.latent_shards.format import DTYPE, LatentSample
from training.latent_shards.manifest import FORMAT, MANIFEST
from training.latent_shards.write import ShardInfo, write_shard
from training.vae import CodecSpec, open_codec

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("isic_id", "image_path", "sha256", "split", "label", "diagnosis", "skin_tone_group", "sex",
                    "age_approx", "anatom_site_general")


@dataclass(frozen=True)
class LatentShardsOutputs:
    folder: Path  # the shards and their manifest.json (a DVC out)
    manifest: Path
    report: Path
    shards: list[Path]
    summary: dict


def output_paths(out_dir: Path) -> dict[str, Path]:
    """`shards/` (tars + manifest.json) and `report.json` beside it (a DVC metric cannot sit inside an out)."""
    return {"shards": out_dir / "shards", "manifest": out_dir / "shards" / MANIFEST, "report": out_dir / "report.json"}


def sample_meta(row: pd.Series) -> dict:
    """The `.json` member of a sample: label and the attributes fairness analyses group by."""
    return {"isic_id": row["isic_id"], "label": int(row["label"]), "diagnosis": row["diagnosis"],
            "skin_tone_group": row["skin_tone_group"], "sex": row["sex"], "age": row["age_approx"],
            "site": row["anatom_site_general"], "split": row["split"], "image_sha256": row["sha256"],
            "sources": row.get("sources")}


def _check_table(lesions: pd.DataFrame, where: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in lesions.columns]
    if missing:
        raise ValueError(f"{where}: lesions table lacks columns {missing}")
    doubled = lesions["isic_id"][lesions["isic_id"].duplicated()].tolist()
    if doubled:
        raise ValueError(f"{where}: isic_id not unique: {doubled[:5]}")
    no_hash = lesions["isic_id"][lesions["sha256"].isna()].tolist()
    if no_hash:
        raise ValueError(f"{where}: rows without an image sha256: {no_hash[:5]}")


def write_split_shards(rows: pd.DataFrame, split: str, cache: LatentCache, out_dir: Path,
                       samples_per_shard: int) -> list[ShardInfo]:
    rows = rows.sort_values("isic_id")
    infos = []
    for index, start in enumerate(range(0, len(rows), samples_per_shard)):
        samples = []
        for _, row in rows.iloc[start:start + samples_per_shard].iterrows():
            mean, std = cache.get(row["sha256"])
            samples.append(LatentSample(key=row["isic_id"], mean=mean, std=std, meta=sample_meta(row)))
        infos.append(write_shard(out_dir / f"{split}-{index:06d}.tar", samples))
    return infos


def build_latent_shards(lesions: pd.DataFrame, data_root: Path, codec, resolution: int, out_dir: Path,
                        cache_dir: Path, params: LatentShardsParams, where: str = "lesions") -> LatentShardsOutputs:
    """Encode the cache misses, write the shards and the manifest; `codec` is any LatentCodec."""
    _check_table(lesions, where)
    data_root, paths = Path(data_root), output_paths(Path(out_dir))
    shards_dir = paths["shards"]
    cache = LatentCache(Path(cache_dir), codec.encoder_id, resolution)
    stats = encode_missing([data_root / p for p in lesions["image_path"]], list(lesions["sha256"]), codec, cache,
                           resolution, params.batch_size, params.decode_workers)
    started = time.perf_counter()
    side = resolution // codec.downsample
    latent_shape = [codec.latent_channels, side, side]
    common = {"encoder_id": codec.encoder_id, "resolution": resolution, "dtype": DTYPE, "latent_shape": latent_shape}
    rows, infos = [], []
    for split in sorted(lesions["split"].unique()):
        for info in write_split_shards(lesions[lesions["split"] == split], split, cache, shards_dir,
                                       params.samples_per_shard):
            infos.append(info)
            rows.append({"split": split, "shard": info.path.name, "count": info.count, "sha256": info.sha256,
                         "bytes": info.bytes, **common})
    splits = {str(k): int(v) for k, v in lesions["split"].value_counts().sort_index().items()}
    manifest = {"format": FORMAT, **common, "scaling_factor": codec.scaling_factor,
                "shift_factor": codec.shift_factor, "policy": POLICY, "splits": splits, "shards": rows}
    write_json(manifest, paths["manifest"])
    listed = {row["shard"] for row in rows}
    stale = sorted(p for p in shards_dir.glob("*.tar") if p.name not in listed)
    for path in stale:
        path.unlink()
    summary = {
        "images": len(lesions), "distinct_images": stats.images, "encoded": stats.encoded, "cached": stats.cached,
        "encode_seconds": round(stats.seconds, 2),
        "encode_images_per_s": None if stats.images_per_second is None else round(stats.images_per_second, 1),
        "write_seconds": round(time.perf_counter() - started, 2), "splits": splits,
        "shards": {s: sum(r["split"] == s for r in rows) for s in splits},
        "shards_rewritten": sum(i.written for i in infos), "stale_shards_removed": len(stale),
        "bytes": sum(i.bytes for i in infos), "device": str(codec.device),
        **common, "scaling_factor": codec.scaling_factor,
    }
    write_json(summary, paths["report"])
    log.info("latent_shards: %d images (%d encoded, %d cached) -> %d shards in %s", len(lesions), stats.encoded,
             stats.cached, len(rows), shards_dir)
    return LatentShardsOutputs(folder=shards_dir, manifest=paths["manifest"], report=paths["report"],
                               shards=[i.path for i in infos], summary=summary)


def run_latent_shards(lesions_path: Path, data_root: Path, vae_dir: Path, out_dir: Path, cache_dir: Path,
                      params: LatentShardsParams) -> LatentShardsOutputs:
    """The stage: the codec named by `<vae_dir>/codec.json`, the table at `lesions_path` (image paths
    relative to `data_root`), shards into `out_dir/shards`, encodings cached under `cache_dir`."""
    spec = CodecSpec.read(Path(vae_dir) / "codec.json")
    codec = open_codec(spec, params.device)
    return build_latent_shards(pd.read_parquet(lesions_path), Path(data_root), codec, spec.resolution,
                               Path(out_dir), Path(cache_dir), params, where=str(lesions_path))
