"""The images the downstream classifiers train and are tested on, as `ImageItem`s plus their subgroup columns.

- Real: rows of the lesions table (`image_path` under the data root) by split: train, val (threshold and
  early stopping), test (`isic_test`).
- Synthetic: the samples of the `synthetic_shards` stage (latent shards of split "synthetic" whose samples also
  carry `<key>.png`, the decoded image), read through `shards/manifest.json`; each shard's sha256 is checked
  against the manifest; the PNG member of each sample is read in place from the tar.
- External: one test set per `dataset` of the external-sets table.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipelines.synthetic_shards.stage import output_paths as synthetic_output_paths
from training.downstream.dataset import ImageItem
from training.downstream.images import ImageSource, tar_members
from training.latent_shards.manifest import MANIFEST, read_manifest

SYNTHETIC_SPLIT = "synthetic"  # the split name of the synthetic samples in their latent-shard manifest

# Columns of the predictions table (pipelines/fairness/predictions.py) that describe the image.
META_COLUMNS = ("image_id", "label", "skin_tone_group", "sex", "age_approx", "anatom_site_general", "source")


@dataclass(frozen=True)
class TestSet:
    name: str  # the predictions' `test_set`
    items: list[ImageItem]
    meta: pd.DataFrame  # META_COLUMNS, one row per item, same order


def _items(frame: pd.DataFrame, data_root: Path, id_column: str, where: str,
           content_column: str = "image_path") -> list[ImageItem]:
    missing = frame["image_path"].isna()
    if missing.any():
        rows = frame.index[missing].tolist()[:10]
        raise ValueError(f"{where}: rows {rows} have no image_path (expected a path relative to {data_root})")
    labels = pd.to_numeric(frame["label"], errors="coerce")
    bad = ~labels.isin([0, 1])
    if bad.any():
        raise ValueError(f"{where}: rows {frame.index[bad].tolist()[:10]} have label not in {{0, 1}}")
    return [ImageItem(key=str(key), source=ImageSource(str(Path(data_root) / path)), label=int(label),
                      content=str(content))
            for key, path, label, content in zip(frame[id_column], frame["image_path"], labels,
                                                 frame[content_column], strict=True)]


def lesion_split(lesions: pd.DataFrame, data_root: Path, split: str, name: str, where: str = "lesions") -> TestSet:
    """The lesions of one split (sorted by isic_id). `source` is the first of the image's `sources`
    (sorted, so the earliest challenge that holds it, e.g. "isic2016:test")."""
    rows = lesions[lesions["split"] == split].sort_values("isic_id")
    content = "sha256" if "sha256" in rows.columns else "image_path"  # the lesions table hashes every image
    items = _items(rows, data_root, "isic_id", f"{where} (split {split})", content)
    meta = pd.DataFrame({
        "image_id": rows["isic_id"].astype(str).to_numpy(), "label": rows["label"].astype(int).to_numpy(),
        "skin_tone_group": rows["skin_tone_group"].to_numpy(), "sex": rows["sex"].to_numpy(),
        "age_approx": rows["age_approx"].astype(float).to_numpy(),
        "anatom_site_general": rows["anatom_site_general"].to_numpy(),
        "source": rows["sources"].astype(str).str.split("|").str[0].to_numpy(),
    })
    return TestSet(name, items, meta)


def external_test_sets(table: pd.DataFrame, data_root: Path, where: str = "external_sets") -> list[TestSet]:
    """One test set per `dataset` of the external-sets table, named after it, rows sorted by image_id."""
    sets = []
    for dataset, rows in sorted(table.groupby("dataset", sort=False), key=lambda pair: str(pair[0])):
        rows = rows.sort_values("image_id")
        items = _items(rows, data_root, "image_id", f"{where} (dataset {dataset})")
        meta = pd.DataFrame({
            "image_id": rows["image_id"].astype(str).to_numpy(), "label": rows["label"].astype(int).to_numpy(),
            "skin_tone_group": rows["skin_tone_group"].to_numpy(), "sex": rows["sex"].to_numpy(),
            "age_approx": rows["age_approx"].astype(float).to_numpy(),
            "anatom_site_general": rows["anatom_site_general"].to_numpy(), "source": str(dataset),
        })
        sets.append(TestSet(str(dataset), items, meta))
    return sets


def synthetic_items(synthetic_dir: Path) -> list[ImageItem]:
    """Every sample of the synthetic shards under `synthetic_dir` (the synthetic_shards stage's output folder;
    its `shards/manifest.json` is a latent-shard manifest of split "synthetic"), in manifest order."""
    folder = synthetic_output_paths(Path(synthetic_dir))["shards"]
    manifest = read_manifest(folder)  # names the file when it is missing or not a latent-shard manifest
    items: list[ImageItem] = []
    for row in manifest["shards"]:
        if row["split"] != SYNTHETIC_SPLIT:
            continue
        tar = folder / row["shard"]
        if not tar.is_file():
            raise FileNotFoundError(f"{folder / MANIFEST}: shard {row['shard']} not found in {folder}")
        digest = hashlib.sha256(tar.read_bytes()).hexdigest()
        if digest != row["sha256"]:
            raise ValueError(f"{tar}: sha256 {digest[:12]}... differs from the manifest's {row['sha256'][:12]}...")
        shard = _shard_items(tar, digest)
        if len(shard) != row["count"]:
            raise ValueError(f"{tar}: {len(shard)} samples with a png and a json; the manifest says {row['count']}")
        items.extend(shard)
    return items


def _shard_items(tar_path: Path, digest: str) -> list[ImageItem]:
    pngs = tar_members(tar_path, "png")
    items = []
    with tarfile.open(tar_path, mode="r:") as tar:
        for info in tar:
            key, _, extension = Path(info.name).name.partition(".")
            if extension != "json":
                continue
            attributes = json.loads(tar.extractfile(info).read())
            if key not in pngs:
                raise ValueError(f"{tar_path}: sample {key!r} has no png member")
            if attributes.get("label") not in (0, 1):
                raise ValueError(f"{tar_path}: sample {key!r} has label {attributes.get('label')!r}; expected 0 or 1")
            items.append(ImageItem(key=key, source=pngs[key], label=int(attributes["label"]),
                                   content=f"{digest}:{key}"))
    return items
