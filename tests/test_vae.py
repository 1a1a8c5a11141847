"""Codecs: Haar wavelet inversion, PSNR against its formula, a tiny AutoencoderKL through the production
loading path (save -> codec.json -> open_codec), and the `vae` stage fitting, saving, reloading, reporting."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from pipelines.vae.params import VaeFitParams, VaeParams
from pipelines.vae.stage import run_vae
from training.vae import CodecSpec, HaarCodec, KLCodec, haar_forward, haar_inverse, open_codec, weights_digest
from training.vae.fit import SmallAutoencoderConfig, small_autoencoder
from training.vae.quality import psnr, ssim


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)


def test_haar_shapes_and_exact_inversion():
    generator = torch.Generator().manual_seed(0)
    # Dyadic values (k / 256): every sum and halving is exact in float32, so inversion is bit-exact.
    images = torch.randint(-256, 257, (2, 3, 16, 12), generator=generator).float() / 256
    coefficients = haar_forward(images)
    assert coefficients.shape == (2, 12, 8, 6)
    assert torch.equal(haar_inverse(coefficients), images)
    noisy = torch.rand(1, 3, 256, 256, generator=generator) * 2 - 1
    assert haar_forward(noisy).shape == (1, 12, 128, 128)  # seeds/002 App. B: 3x256x256 -> 12x128x128
    assert torch.allclose(haar_inverse(haar_forward(noisy)), noisy, atol=1e-6)


def test_haar_bands_are_the_orthonormal_haar_basis():
    block = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # a b / c d
    ll, lh, hl, hh = haar_forward(block).flatten().tolist()
    assert (ll, lh, hl, hh) == (5.0, -1.0, -2.0, 0.0)  # (a+b+c+d)/2, (a-b+c-d)/2, (a+b-c-d)/2, (a-b-c+d)/2
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(haar_forward(x).pow(2).sum(), x.pow(2).sum(), rtol=1e-5)  # energy preserved


def test_haar_codec_interface():
    codec = HaarCodec(scale=0.5)
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2)) * 2 - 1
    mean, std = codec.encode(images)
    assert mean.shape == std.shape == (2, 12, 4, 4) and not std.any()
    assert torch.allclose(mean, haar_forward(images) * 0.5)
    assert torch.allclose(codec.decode(mean), images, atol=1e-6)
    assert codec.encoder_id == "haar_wavelet-s0.5-fp32"


def test_psnr_against_reference_formula():
    reference = torch.full((1, 3, 4, 4), 0.5)
    assert psnr(reference, reference + 0.1).item() == pytest.approx(20.0, abs=1e-4)  # MSE 0.01 -> 20 dB
    rng = np.random.default_rng(0)
    a, b = rng.random((3, 3, 8, 8)), rng.random((3, 3, 8, 8))
    expected = [10 * math.log10(1.0 / np.mean((a[i] - b[i]) ** 2)) for i in range(3)]
    assert psnr(torch.from_numpy(a), torch.from_numpy(b)).tolist() == pytest.approx(expected, rel=1e-5)
    assert psnr(torch.from_numpy(a) * 255, torch.from_numpy(b) * 255, data_range=255).tolist() == pytest.approx(
        expected, rel=1e-5)


def _reference_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al. 2004 on one (C, H, W) image in [0, 1]: 11x11 Gaussian window (sigma 1.5), K1 0.01,
    K2 0.03, valid positions only, averaged over positions and channels."""
    from numpy.lib.stride_tricks import sliding_window_view

    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    window = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01**2, 0.03**2

    def filtered(x: np.ndarray) -> np.ndarray:
        return np.einsum("chwij,ij->chw", sliding_window_view(x, (11, 11), axis=(1, 2)), window)

    mu_a, mu_b = filtered(a), filtered(b)
    var_a, var_b = filtered(a * a) - mu_a**2, filtered(b * b) - mu_b**2
    cov = filtered(a * b) - mu_a * mu_b
    return float((((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))).mean())


def test_ssim_against_reference_formula():
    generator = torch.Generator().manual_seed(3)
    a = torch.rand(2, 3, 32, 32, generator=generator, dtype=torch.float64)
    b = (a + 0.1 * torch.randn(2, 3, 32, 32, generator=generator, dtype=torch.float64)).clamp(0, 1)
    expected = [_reference_ssim(a[i].numpy(), b[i].numpy()) for i in range(2)]
    assert ssim(a, b).tolist() == pytest.approx(expected, abs=1e-4)
    assert ssim(a, a).tolist() == pytest.approx([1.0, 1.0], abs=1e-6)


def _tiny_model(seed: int = 0):
    model = small_autoencoder(SmallAutoencoderConfig((8, 16), 1, 4, 4), resolution=16, seed=seed)
    model.register_to_config(scaling_factor=0.5)
    return model


def test_tiny_autoencoder_saved_and_loaded_through_the_production_path(tmp_path: Path):
    model = _tiny_model()
    folder = tmp_path / "my_vae"
    model.save_pretrained(folder, safe_serialization=True)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "diffusion_pytorch_model.safetensors"]
    spec_path = CodecSpec("autoencoder_kl", 16, source=str(folder)).write(tmp_path / "codec.json")
    codec = open_codec(CodecSpec.read(spec_path), "cpu")
    reference = KLCodec(model, "cpu")
    assert isinstance(codec, KLCodec)
    assert codec.encoder_id == reference.encoder_id and codec.encoder_id.endswith("-fp32")
    assert (codec.scaling_factor, codec.downsample, codec.latent_channels) == (0.5, 2, 4)
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    mean, std = codec.encode(images)
    with torch.no_grad():
        posterior = model.encode(images).latent_dist
    assert torch.allclose(mean, posterior.mean * 0.5, atol=1e-6) and torch.allclose(std, posterior.std * 0.5)
    assert codec.decode(mean).shape == (2, 3, 16, 16)


def test_relative_codec_source_resolves_beside_the_spec(tmp_path: Path):
    _tiny_model().save_pretrained(tmp_path / "vae" / "model")
    CodecSpec("autoencoder_kl", 16, source="model").write(tmp_path / "vae" / "codec.json")
    assert CodecSpec.read(tmp_path / "vae" / "codec.json").source == str(tmp_path / "vae" / "model")
    with pytest.raises(OSError, match="no_such_folder"):
        open_codec(CodecSpec("autoencoder_kl", 16, source=str(tmp_path / "no_such_folder")), "cpu")


def test_encoder_id_follows_weights_and_scaling():
    first, same, other = _tiny_model(0), _tiny_model(0), _tiny_model(1)
    assert weights_digest(first) == weights_digest(same) != weights_digest(other)
    rescaled = _tiny_model(0)
    rescaled.register_to_config(scaling_factor=0.25)
    assert KLCodec(first).encoder_id == KLCodec(same).encoder_id != KLCodec(rescaled).encoder_id


def _demo_table(root: Path, count: int = 12) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(count):
        path = root / "images" / f"ISIC_{i:07d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        yy, xx = np.mgrid[:30, :40]
        image = np.stack([150 + 60 * np.sin(xx / (3 + i)), 120 + 50 * np.cos(yy / 4), 100 + 0 * xx], -1)
        Image.fromarray(np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)).save(path)
        import hashlib

        rows.append({"isic_id": f"ISIC_{i:07d}", "image_path": f"images/ISIC_{i:07d}.jpg",
                     "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                     "split": "train" if i < 8 else "val", "label": i % 2})
    pd.DataFrame(rows).to_parquet(root / "lesions.parquet")
    return root / "lesions.parquet"


def test_vae_stage_fits_saves_reloads_and_reports(tmp_path: Path):
    table = _demo_table(tmp_path)
    params = VaeParams(resolution=16, eval_images=4, decode_workers=1, device="cpu",
                       fit=VaeFitParams(block_out_channels=(8, 16), norm_num_groups=4, steps=4, batch_size=4))
    outputs = run_vae(table, tmp_path, tmp_path / "vae", params)
    assert (outputs.model / "diffusion_pytorch_model.safetensors").is_file()
    assert not list(outputs.model.glob("*.bin"))
    assert json.loads(outputs.codec.read_text())["source"] == "model"
    codec = open_codec(CodecSpec.read(outputs.codec), "cpu")
    summary = outputs.summary
    assert summary["encoder_id"] == codec.encoder_id and summary["latent_shape"] == [4, 8, 8]
    assert summary["eval_split"] == "val" and summary["eval_images"] == 4
    assert summary["fit"]["train_images"] == 8 and summary["fit"]["steps"] == 4
    # shift/scale = mean and 1/std of the train latents' posterior means: scaled train latents ~ (0, 1)
    from pipelines.latent_shards.preprocess import load_images, to_tensor

    lesions = pd.read_parquet(table)
    train = to_tensor(load_images([tmp_path / p for p in lesions[lesions.split == "train"].image_path], 16))
    with torch.no_grad():
        means = codec.model.encode(train).latent_dist.mean
    assert codec.scaling_factor == pytest.approx(1 / float(means.std()), rel=1e-4)
    assert codec.shift_factor == pytest.approx(float(means.mean()), rel=1e-4, abs=1e-6)
    scaled, _ = codec.encode(train)
    assert (float(scaled.mean()), float(scaled.std())) == pytest.approx((0.0, 1.0), abs=1e-4)
    assert summary["psnr_db"] == pytest.approx(np.mean(summary["psnr_per_image"]), abs=0.01)
    assert Image.open(outputs.grid).size[1] > 2 * 128
    # A re-run with the same fit key reuses the model: same weights, same encoder id, cache stays valid.
    again = run_vae(table, tmp_path, tmp_path / "vae", params)
    assert again.summary["encoder_id"] == summary["encoder_id"]


def test_vae_stage_haar_kind_is_lossless(tmp_path: Path):
    table = _demo_table(tmp_path, count=10)
    outputs = run_vae(table, tmp_path, tmp_path / "vae", VaeParams(kind="haar_wavelet", resolution=16,
                                                                   eval_images=3, decode_workers=1, device="cpu"))
    assert outputs.summary["latent_shape"] == [12, 8, 8]
    assert outputs.summary["psnr_db"] > 60  # exact up to float rounding and the uint8 round trip


def _stale_demo_model(out: Path) -> None:
    """What a demo run leaves in <out>/model before the configuration switches codec."""
    _tiny_model(3).save_pretrained(out / "model", safe_serialization=True)
    (out / "model" / "fit.json").write_text('{"fit_key": "demo"}')


def test_vae_stage_haar_kind_writes_the_model_out_and_drops_stale_weights(tmp_path: Path):
    """dvc.yaml declares <out>/model as an out (and a dep of later stages): it must exist for every codec."""
    table = _demo_table(tmp_path, count=6)
    _stale_demo_model(tmp_path / "vae")
    params = VaeParams(kind="haar_wavelet", resolution=16, eval_images=2, decode_workers=1, device="cpu")
    outputs = run_vae(table, tmp_path, tmp_path / "vae", params)
    assert outputs.model == tmp_path / "vae" / "model"
    assert sorted(p.name for p in outputs.model.iterdir()) == ["model.json"]
    assert json.loads((outputs.model / "model.json").read_text()) == {
        "kind": "haar_wavelet", "resolution": 16, "wavelet_scale": 0.5, "encoder_id": "haar_wavelet-s0.5-fp32"}
    rescaled = run_vae(table, tmp_path, tmp_path / "vae", params.model_copy(update={"wavelet_scale": 0.25}))
    assert json.loads((rescaled.model / "model.json").read_text())["wavelet_scale"] == 0.25


def test_vae_stage_pretrained_folder_writes_a_model_record(tmp_path: Path):
    """A pretrained VAE: <out>/model names it, with its resolved config and weights hash; stale demo weights go,
    and other weights under the same name give another record (so the stages that decode re-run)."""
    table = _demo_table(tmp_path, count=6)
    _stale_demo_model(tmp_path / "vae")
    _tiny_model(0).save_pretrained(tmp_path / "pretrained_vae", safe_serialization=True)
    params = VaeParams(pretrained="pretrained_vae", resolution=16, eval_images=2, decode_workers=1, device="cpu")
    outputs = run_vae(table, tmp_path, tmp_path / "vae", params)
    assert sorted(p.name for p in outputs.model.iterdir()) == ["model.json"]
    record = json.loads((outputs.model / "model.json").read_text())
    codec = open_codec(CodecSpec.read(outputs.codec), "cpu")
    assert json.loads(outputs.codec.read_text())["source"] == str(tmp_path / "pretrained_vae")
    assert record["kind"] == "autoencoder_kl" and record["pretrained"] == "pretrained_vae"
    assert record["codec_sha256"] == codec.digest and codec.encoder_id.startswith(f"autoencoder_kl-{codec.digest[:16]}")
    assert record["config"]["scaling_factor"] == 0.5 and record["config"]["block_out_channels"] == [8, 16]
    assert record["config"]["_class_name"] == "AutoencoderKL"
    assert str(tmp_path) not in (outputs.model / "model.json").read_text()  # machine-free
    _tiny_model(1).save_pretrained(tmp_path / "pretrained_vae", safe_serialization=True)
    again = run_vae(table, tmp_path, tmp_path / "vae", params)
    assert json.loads((again.model / "model.json").read_text())["codec_sha256"] != record["codec_sha256"]


def test_vae_stage_refuses_its_own_output_as_the_pretrained_model(tmp_path: Path):
    table = _demo_table(tmp_path, count=6)
    _stale_demo_model(tmp_path / "vae")
    params = VaeParams(pretrained="vae/model", resolution=16, eval_images=2, decode_workers=1, device="cpu")
    with pytest.raises(ValueError, match="own output folder"):
        run_vae(table, tmp_path, tmp_path / "vae", params)
    assert (tmp_path / "vae" / "model" / "diffusion_pytorch_model.safetensors").is_file()
