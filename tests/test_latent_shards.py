"""The latent_shards stage on a tiny table built here: determinism, incremental encoding, truncation,
streaming with more workers than shards, the image policy, and the checks."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from pipelines.latent_shards.cache import LatentCache
from pipelines.latent_shards.checks import check_latent_shards, check_stage
from pipelines.latent_shards.params import LatentChecksParams, LatentShardsParams
from pipelines.latent_shards.preprocess import load_image, load_image_full
from pipelines.latent_shards.stage import build_latent_shards, run_latent_shards
from training.latent_shards import ShardError, iter_shard, read_latent_set, read_manifest, shard_paths, write_shard
from training.latent_shards.stream import LatentStream, StreamSettings, latent_loader
from training.vae import CodecSpec, HaarCodec, KLCodec
from training.vae.fit import SmallAutoencoderConfig, small_autoencoder

RESOLUTION = 16


class CountingCodec:
    """A real codec (Haar) that counts the images it is asked to encode."""

    def __init__(self, inner=None):
        self.inner = inner or HaarCodec(scale=0.5)
        self.encoded = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode(self, images):
        self.encoded += len(images)
        return self.inner.encode(images)


def _image(i: int, size: tuple[int, int]) -> Image.Image:
    rng = np.random.default_rng(i)
    yy, xx = np.mgrid[: size[1], : size[0]]
    base = np.stack([140 + 80 * np.sin(xx / (2 + i % 5)), 110 + 60 * np.cos(yy / 3), 90 + 40 * np.sin((xx + yy) / 7)],
                    -1)
    return Image.fromarray(np.clip(base + rng.normal(0, 5, base.shape), 0, 255).astype(np.uint8))


def _add_rows(root: Path, table: pd.DataFrame | None, ids: range) -> pd.DataFrame:
    rows = []
    for i in ids:
        path = root / "images" / f"ISIC_{i:07d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        _image(i, (40 + 4 * (i % 3), 30)).save(path, quality=92)
        rows.append({"isic_id": f"ISIC_{i:07d}", "image_path": f"images/ISIC_{i:07d}.jpg",
                     "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                     "split": ("train", "train", "val", "test")[i % 4], "label": int(i % 3 == 0),
                     "diagnosis": "MEL" if i % 3 == 0 else "NV",
                     "skin_tone_group": "ABC"[i % 3] if i % 5 else "unknown",
                     "sex": ("female", "male", None)[i % 3], "age_approx": float(30 + i) if i % 4 else np.nan,
                     "anatom_site_general": "back" if i % 2 else None, "sources": "isic2019:train"})
    new = pd.DataFrame(rows)
    return new if table is None else pd.concat([table, new], ignore_index=True)


@pytest.fixture()
def tiny(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    torch.set_num_threads(1)
    return tmp_path, _add_rows(tmp_path, None, range(14))


def _params(**overrides) -> LatentShardsParams:
    return LatentShardsParams(**{"samples_per_shard": 3, "batch_size": 4, "decode_workers": 1, "device": "cpu",
                                 **overrides})


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.tar"))}


def test_shards_hold_each_split_sorted_with_manifest(tiny):
    root, table = tiny
    out = build_latent_shards(table, root, HaarCodec(0.5), RESOLUTION, root / "out", root / "cache", _params())
    manifest = read_manifest(root / "out" / "shards")
    assert manifest["splits"] == {"test": 3, "train": 8, "val": 3}
    assert [r["shard"] for r in manifest["shards"]] == ["test-000000.tar", "train-000000.tar", "train-000001.tar",
                                                         "train-000002.tar", "val-000000.tar"]
    assert {r["sha256"] for r in manifest["shards"]} == set(_hashes(root / "out" / "shards").values())
    assert manifest["latent_shape"] == [12, 8, 8] and manifest["dtype"] == "float16"
    assert manifest["scaling_factor"] == 0.5 and manifest["encoder_id"] == "haar_wavelet-s0.5-fp32"
    with tarfile.open(root / "out" / "shards" / "train-000000.tar") as tar:
        members = tar.getmembers()
        assert [m.name for m in members[:3]] == ["ISIC_0000000.json", "ISIC_0000000.mean.npy", "ISIC_0000000.std.npy"]
        assert {(m.mtime, m.uid, m.gid, m.uname, m.mode) for m in members} == {(0, 0, 0, "", 0o644)}
    latents = read_latent_set(shard_paths(root / "out" / "shards", "train"))
    train = table[table.split == "train"].sort_values("isic_id")
    assert latents.keys == list(train.isic_id) and latents.std is None  # Haar: deterministic, std all zero
    cache = LatentCache(root / "cache", "haar_wavelet-s0.5-fp32", RESOLUTION)
    assert torch.equal(latents.mean[0], torch.from_numpy(cache.get(train.sha256.iloc[0])[0]).float())
    assert latents.conditions["label"].tolist() == list(train.label)
    assert latents.conditions["skin_tone"].tolist() == [{"A": 0, "B": 1, "C": 2}.get(t, 3)
                                                        for t in train.skin_tone_group]
    first = next(iter_shard(root / "out" / "shards" / "train-000000.tar"))
    assert first.meta == {"isic_id": "ISIC_0000000", "label": 1, "diagnosis": "MEL", "skin_tone_group": "unknown",
                          "sex": "female", "age": None, "site": None, "split": "train",
                          "image_sha256": train.sha256.iloc[0], "sources": "isic2019:train"}
    assert out.summary["encoded"] == 14 and out.summary["shards"] == {"test": 1, "train": 3, "val": 1}


def test_same_inputs_and_encoder_give_byte_identical_shards(tiny):
    root, table = tiny
    model = small_autoencoder(SmallAutoencoderConfig((8, 16), 1, 4, 4), resolution=RESOLUTION, seed=0)
    for run in ("a", "b"):  # two fresh caches: the encodings themselves are reproducible, not just cached
        build_latent_shards(table, root, KLCodec(model, "cpu"), RESOLUTION, root / run, root / f"cache_{run}",
                            _params(decode_workers=2))
    a, b = root / "a" / "shards", root / "b" / "shards"
    assert _hashes(a) == _hashes(b) and len(_hashes(a)) == 5
    assert (a / "manifest.json").read_bytes() == (b / "manifest.json").read_bytes()
    before = {p.name: p.stat().st_mtime_ns for p in a.glob("*.tar")}
    rerun = build_latent_shards(table, root, KLCodec(model, "cpu"), RESOLUTION, root / "a", root / "cache_a", _params())
    assert rerun.summary["shards_rewritten"] == 0
    assert {p.name: p.stat().st_mtime_ns for p in a.glob("*.tar")} == before


def test_incremental_encodes_only_new_images(tiny):
    root, table = tiny
    codec = CountingCodec()
    first = build_latent_shards(table, root, codec, RESOLUTION, root / "out", root / "cache", _params())
    assert codec.encoded == 14 and first.summary["encoded"] == 14
    codec.encoded = 0
    again = build_latent_shards(table, root, codec, RESOLUTION, root / "out", root / "cache", _params())
    assert codec.encoded == 0 and (again.summary["encoded"], again.summary["cached"]) == (0, 14)
    bigger = _add_rows(root, table, range(14, 17))  # k = 3 new images
    added = build_latent_shards(bigger, root, codec, RESOLUTION, root / "out", root / "cache", _params())
    assert codec.encoded == 3 and (added.summary["encoded"], added.summary["cached"]) == (3, 14)
    assert read_manifest(root / "out" / "shards")["splits"] == {"test": 4, "train": 9, "val": 4}
    # Dropping rows removes the shards the manifest no longer lists.
    smaller = build_latent_shards(table.iloc[:5], root, codec, RESOLUTION, root / "out", root / "cache", _params())
    assert codec.encoded == 3 and smaller.summary["stale_shards_removed"] > 0
    listed = read_manifest(root / "out" / "shards")["shards"]
    assert sorted(_hashes(root / "out" / "shards")) == sorted(r["shard"] for r in listed)


@pytest.mark.parametrize("cut", ["member_boundary", "mid_member"])
def test_truncated_shard_is_named(tiny, cut):
    root, table = tiny
    build_latent_shards(table, root, HaarCodec(0.5), RESOLUTION, root / "out", root / "cache", _params())
    shard = root / "out" / "shards" / "train-000001.tar"
    with tarfile.open(shard) as tar:
        members = tar.getmembers()
    # Cut exactly after the 4th member: tarfile alone would read this as a valid, shorter archive.
    end = members[4].offset if cut == "member_boundary" else members[4].offset_data + 100
    shard.write_bytes(shard.read_bytes()[:end])
    with pytest.raises(ShardError, match="train-000001.tar.*truncated"):
        read_latent_set(shard_paths(root / "out" / "shards", "train"))
    with pytest.raises(ShardError, match="train-000001.tar"):
        LatentStream([shard])
    report = check_latent_shards(_write(table, root), root, root / "out" / "shards", LatentChecksParams(std_min=0.05))
    failed = {o.expectation: o for o in report.failures}
    assert set(failed) == {"manifest_hashes_match", "shards_whole", "split_counts_match_lesions",
                           "manifest_counts_match_shards"}
    assert "train-000001.tar" in failed["shards_whole"].unexpected_rows[0]
    assert "train-000001.tar" in report.summary()


def _write(table: pd.DataFrame, root: Path) -> Path:
    table.to_parquet(root / "lesions.parquet")
    return root / "lesions.parquet"


@pytest.mark.filterwarnings("ignore:This DataLoader will create")  # 3 workers on 2 cores: on purpose
def test_stream_with_more_workers_than_shards(tiny):
    root, table = tiny
    build_latent_shards(table, root, HaarCodec(0.5), RESOLUTION, root / "out", root / "cache",
                        _params(samples_per_shard=5))
    shards = shard_paths(root / "out" / "shards", "train")
    assert len(shards) == 2
    expected = sorted(table[table.split == "train"].isic_id)
    loader = latent_loader(shards, StreamSettings(batch_size=3, shuffle_buffer=4, seed=1, flip=True), num_workers=3)
    batches = list(loader)
    keys = [k for b in batches for k in b["key"]]
    assert sorted(keys) == expected  # every sample once, though one worker had no shard
    assert batches[0]["mean"].shape[1:] == (12, 8, 8) and batches[0]["label"].dtype == torch.long
    resampled = latent_loader(shards, StreamSettings(batch_size=2, resampled=True, epoch_samples=10), num_workers=3)
    assert [len(b["key"]) for b in resampled] == [2] * 5  # 10 samples per rank per epoch, whatever the shards
    # Flips act on mean and std together and keep the values (a permutation of each latent).
    single = LatentStream(shards[:1], StreamSettings(batch_size=5, shuffle_buffer=0, flip=True, seed=3))
    plain = LatentStream(shards[:1], StreamSettings(batch_size=5, shuffle_buffer=0))
    flipped, original = next(iter(single)), next(iter(plain))
    assert flipped["key"] == original["key"]
    for f, o in zip(flipped["mean"], original["mean"], strict=True):
        assert any(torch.equal(f, o.flip(dims)) for dims in [(), (-1,), (-2,), (-1, -2)])


def test_image_policy_exif_draft_and_centre_crop(tmp_path: Path):
    upright = _image(7, (64, 48))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    upright.save(tmp_path / "rotated.jpg", quality=95, exif=exif)
    upright.save(tmp_path / "plain.png")
    rotated = load_image(tmp_path / "rotated.jpg", 24)
    expected = load_image(tmp_path / "plain.png", 24)
    # EXIF 6 displays the stored image turned 90 degrees clockwise; the centre square then matches.
    turned = np.asarray(Image.fromarray(np.asarray(upright)).transpose(Image.Transpose.ROTATE_270))
    turned_crop = load_image(_save(tmp_path / "turned.png", turned), 24)
    assert rotated.shape == (24, 24, 3)
    assert np.abs(rotated.astype(int) - turned_crop.astype(int)).mean() < 6
    assert np.abs(rotated.astype(int) - expected.astype(int)).mean() > 10  # orientation really changed it
    large = tmp_path / "large.jpg"
    Image.fromarray(np.asarray(_image(3, (64, 48)).resize((1600, 1200), Image.Resampling.BICUBIC))).save(large)
    with Image.open(large) as image:
        image.draft("RGB", (64, 64))
        assert image.size == (200, 150)  # DCT scale 1/8: both sides still >= 64
    fast, naive = load_image(large, 64), load_image_full(large, 64)
    assert np.abs(fast.astype(int) - naive.astype(int)).mean() < 3  # same policy, reduced-size decoding
    with pytest.raises(ValueError, match="large.jpg.*sha256"):
        load_image(large, 64, expected_sha256="0" * 64)


def _save(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array).save(path)
    return path


def test_checks_pass_then_catch_planted_defects(tiny):
    root, table = tiny
    lesions = _write(table, root)
    spec = CodecSpec("haar_wavelet", RESOLUTION, wavelet_scale=0.5).write(root / "codec.json")
    out = run_latent_shards(lesions, root, spec.parent, root / "out", root / "cache", _params())
    checks = LatentChecksParams(psnr_min=40.0, psnr_sample=5, std_min=0.05)
    report = check_stage(lesions, root, spec.parent, root / "out", checks, device="cpu")
    assert report.success, report.summary()
    psnr = next(o for o in report.outcomes if o.expectation == "reconstruction_psnr")
    assert "over 5 images" in psnr.observed
    # A row the shards lack, and a NaN latent in a rewritten shard (its hash then differs from the manifest).
    _write(_add_rows(root, table, range(20, 21)), root)
    shard = out.folder / "val-000000.tar"
    samples = list(iter_shard(shard))
    bad = samples[0].mean.copy()
    bad[0, 0, 0] = np.nan
    samples[0] = type(samples[0])(key=samples[0].key, mean=bad, std=samples[0].std, meta=samples[0].meta)
    write_shard(shard, samples)
    report = check_latent_shards(lesions, root, out.folder, checks)
    failed = {o.expectation: o for o in report.failures}
    assert set(failed) == {"manifest_hashes_match", "split_counts_match_lesions", "latents_finite"}
    assert failed["latents_finite"].unexpected_rows == [samples[0].key]
    assert failed["split_counts_match_lesions"].unexpected_rows == ["train: missing ISIC_0000020"]
    assert failed["manifest_hashes_match"].unexpected_rows == ["val-000000.tar: sha256 differs"]
    stats = check_latent_shards(lesions, root, out.folder, LatentChecksParams(std_min=5.0))
    assert "latent_stats_in_range" in {o.expectation for o in stats.failures}


def test_cache_entries_are_addressed_by_image_encoder_and_resolution(tmp_path: Path):
    cache = LatentCache(tmp_path, "enc-1", 16)
    digest = hashlib.sha256(b"image").hexdigest()
    assert digest not in cache
    cache.put(digest, np.ones((4, 2, 2), np.float16), np.zeros((4, 2, 2), np.float16))
    assert digest in cache and LatentCache(tmp_path, "enc-2", 16).path(digest) != cache.path(digest)
    assert digest not in LatentCache(tmp_path, "enc-1", 32)
    assert cache.path(digest).relative_to(tmp_path).parts[:3] == ("enc-1", "16px-exif-draft-centercrop-bicubic-v1",
                                                                  digest[:2])
    assert not list(cache.folder.rglob("*.tmp"))
    mean, std = cache.get(digest)
    assert mean.dtype == np.float16 and float(mean.sum()) == 16.0 and not std.any()


def test_json_member_is_canonical():
    from training.latent_shards.format import json_bytes

    assert json_bytes({"b": np.int64(1), "a": float("nan"), "c": None}) == b'{"a":null,"b":1,"c":null}'
    assert json.loads(json_bytes({"age": np.float64(40.0)})) == {"age": 40.0}
