"""Generative metrics against references: FID vs torchmetrics, MS-SSIM vs pytorch-msssim, precision/recall."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from pytorch_msssim import ms_ssim as library_ms_ssim
from safetensors.torch import save_file
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

from pipelines.generation_report import (
    ClassifierFeatures,
    GenerationReportParams,
    extract_features,
    fid,
    fid_at_counts,
    inception_v3_from_file,
    ms_ssim,
    ms_ssim_settings,
    pair_ms_ssim,
    precision_recall,
    run_generation_report,
)
from pipelines.generation_report.images import real_image_set, synthetic_image_set
from pipelines.generation_report.ms_ssim import multiscale_ssim
from pipelines.synthetic_shards import SyntheticSample, write_shard


class SmallFeatures(nn.Module):
    """A fixed random conv net: images in [-1, 1] -> 12 pooled features."""

    num_features = 12

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Sequential(nn.Conv2d(3, 12, 3, stride=2), nn.Tanh(), nn.Conv2d(12, 12, 3))

    def forward(self, images):
        return self.conv(images).mean(dim=(2, 3))


def random_images(n: int, side: int, seed: int, brightness: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 255 * brightness, (n, 1, 1, 3))
    return np.clip(base + rng.normal(0, 40, (n, side, side, 3)), 0, 255).astype(np.uint8)


def torchmetrics_fid(network: nn.Module, real: np.ndarray, synthetic: np.ndarray) -> float:
    metric = FrechetInceptionDistance(feature=network, normalize=True)
    for images, is_real in ((real, True), (synthetic, False)):
        metric.update(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0, real=is_real)
    return float(metric.compute())


def test_fid_matches_torchmetrics_with_the_same_network():
    network = SmallFeatures()
    real, synthetic = random_images(60, 16, 1), random_images(40, 16, 2, brightness=0.8)
    ours = fid(extract_features(network, [real[:25], real[25:]]), extract_features(network, [synthetic]))
    reference = torchmetrics_fid(network, real, synthetic)
    assert ours > 0.01
    assert ours == pytest.approx(reference, rel=1e-3)


def test_fid_of_a_set_with_itself_is_zero_and_counts_are_capped():
    features = extract_features(SmallFeatures(), [random_images(30, 16, 3)])
    assert abs(fid(features, features)) < 1e-8
    other = extract_features(SmallFeatures(), [random_images(12, 16, 4, brightness=0.9)])
    rows = fid_at_counts(features, other, [5, 10, 5000, 10000], seed=0)
    assert [(r["requested"], r["n_synthetic"], r["n_real"]) for r in rows] == [(5, 5, 30), (10, 10, 30), (5000, 12, 30)]
    assert rows[-1]["fid"] == pytest.approx(fid(features, other), rel=1e-6)  # all 12: the subset is the set


def test_ms_ssim_settings_and_identical_images():
    assert [ms_ssim_settings(s) for s in (256, 161, 160, 64, 32, 16, 8)] == [
        (5, 11), (5, 11), (4, 11), (3, 11), (2, 11), (1, 11), (1, 7)]
    for side in (176, 64, 32, 16):
        x = torch.from_numpy(random_images(1, side, side)).permute(0, 3, 1, 2).float() / 255
        torch.testing.assert_close(ms_ssim(x, x), torch.ones(1))
        y = torch.from_numpy(random_images(1, side, side + 1)).permute(0, 3, 1, 2).float() / 255
        assert (ms_ssim(x, y) < 0.5).all()  # independent noise images are dissimilar


def test_reduced_scale_recursion_equals_pytorch_msssim_at_five_scales():
    torch.manual_seed(0)
    x = torch.rand(3, 3, 176, 176, dtype=torch.float64)
    y = (x + 0.3 * torch.rand_like(x)).clamp(0, 1)
    torch.testing.assert_close(multiscale_ssim(x, y, 5, 11), library_ms_ssim(x, y, data_range=1.0, size_average=False),
                               rtol=1e-4, atol=1e-4)  # only difference: weights renormalised from 1.0001 to 1


def test_pair_ms_ssim_of_copies_is_one():
    images = random_images(4, 32, 5)
    assert pair_ms_ssim(np.concatenate([images, images]), np.array([[0, 4], [1, 5], [3, 7]])) == pytest.approx(1.0)


def test_precision_recall_by_knn_manifolds():
    torch.manual_seed(0)
    real = torch.randn(50, 8)
    assert precision_recall(real, real.clone(), k=3) == {"precision": 1.0, "recall": 1.0, "k": 3}
    far = precision_recall(real, torch.randn(40, 8) + 100.0, k=3)
    assert far["precision"] == 0.0 and far["recall"] == 0.0
    # 1-D by hand, k = 1: real radii all 1, so 0.5 is inside and 10 outside (precision 1/2);
    # synthetic radii 9.5 cover every real point (recall 1)
    hand = precision_recall(torch.tensor([[0.0], [1.0], [2.0], [3.0]]), torch.tensor([[0.5], [10.0]]), k=1)
    assert hand == {"precision": 0.5, "recall": 1.0, "k": 1}


@pytest.mark.slow  # builds a 24M-parameter network: ~5 s alone, far more on a loaded CPU
def test_inception_v3_loads_from_a_local_file(tmp_path):
    import timm

    torch.manual_seed(0)
    backbone = timm.create_model("inception_v3", pretrained=False, num_classes=0).eval()
    state = backbone.state_dict() | {"fc.weight": torch.zeros(2, 2048), "AuxLogits.fc.weight": torch.zeros(2, 768)}
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "isic_inception.safetensors")
    network = inception_v3_from_file(tmp_path / "isic_inception.safetensors")
    images = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        expected = backbone(nn.functional.interpolate(images, size=(299, 299), mode="bilinear", antialias=True))
        features = network(images)
    assert features.shape == (1, 2048)
    torch.testing.assert_close(features, expected)
    save_file({"Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 3, 3)}, tmp_path / "partial.safetensors")
    with pytest.raises(ValueError, match="partial.safetensors"):
        inception_v3_from_file(tmp_path / "partial.safetensors")


def make_inputs(tmp_path, side: int = 16):
    """A lesions table of 24 real images (odd sizes) and 20 synthetic samples in one shard."""
    rows = []
    for i, image in enumerate(random_images(24, 24, 10)):
        path = tmp_path / "data" / f"real_{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[:, : 20 + i % 4]).save(path)
        rows.append({"isic_id": f"ISIC_{i:07d}", "image_path": path.name, "label": i % 2, "split": "train",
                     "skin_tone_group": "ABC"[i % 3]})
    rows.append({**rows[0], "isic_id": "ISIC_0009999", "split": "test"})  # other splits are not compared
    pd.DataFrame(rows).to_parquet(tmp_path / "lesions.parquet")
    samples = [SyntheticSample(key=f"synthetic-x-{i:08d}", latent=np.zeros((4, 2, 2), np.float16), image=image,
                               attributes={"label": i % 2, "skin_tone_group": "BC"[i % 2], "sex": None})
               for i, image in enumerate(random_images(20, side, 11, brightness=0.7))]
    write_shard(tmp_path / "shards" / "synthetic-000000.tar", samples)
    return tmp_path / "lesions.parquet", tmp_path / "data", tmp_path / "shards"


def test_report_stage_numbers_and_plots(tmp_path):
    lesions, data_root, shards = make_inputs(tmp_path)
    params = GenerationReportParams(feature_network="classifier", sample_counts=[5, 10, 5000], ms_ssim_pairs=10, k=2,
                                    plot_samples=15)
    network = SmallFeatures()
    outputs = run_generation_report(params, lesions, data_root, shards, tmp_path / "report", network,
                                    "small test net")
    report = json.loads(outputs.report.read_text())
    assert report["feature_network"] == "small test net" and report["feature_dim"] == 12
    assert (report["n_real"], report["n_synthetic"], report["image_side"]) == (24, 20, 16)
    assert report["ms_ssim"]["scales"] == 1 and report["ms_ssim"]["window"] == 11
    groups = report["groups"]
    assert [(r["requested"], r["n_synthetic"]) for r in groups["all"]["fid"]] == [(5, 5), (10, 10), (5000, 20)]
    assert (groups["malignant"]["n_real"], groups["malignant"]["n_synthetic"]) == (12, 10)
    assert groups["malignant_C"]["n_synthetic"] == 10 and groups["benign_C"]["n_synthetic"] == 0
    assert groups["benign_C"]["fid"] == [] and groups["benign_C"]["precision"] is None
    # the report's full-set FID = torchmetrics on the same images with the same network
    real = real_image_set(pd.read_parquet(lesions), data_root, "train", 16)
    synthetic = synthetic_image_set(shards)
    reference = torchmetrics_fid(network, real.load(range(24)), synthetic.load(range(20)))
    assert groups["all"]["fid"][-1]["fid"] == pytest.approx(reference, rel=1e-3)
    for name in ("benign", "malignant"):
        assert 0 < report["ms_ssim"]["by_class"][name]["synthetic"] < 1
    table = pd.read_csv(outputs.fid_table)
    assert set(table["group"]) >= {"all", "benign", "malignant", "malignant_C"}
    for plot in (outputs.sample_grid, outputs.distributions):
        assert Image.open(plot).size[0] > 300


def test_classifier_features_plug_into_the_reference_fid():
    """The offline network: codec encoder -> latent classifier backbone; same FID as torchmetrics with it."""
    from training.latent_classifier import LatentClassifier, LatentClassifierConfig
    from training.vae.haar import HaarCodec

    torch.manual_seed(0)
    codec = HaarCodec()
    classifier = LatentClassifier(LatentClassifierConfig(in_channels=12, backbone="resnet18", head_hidden=8)).eval()
    network = ClassifierFeatures(codec.encode, classifier)
    real, synthetic = random_images(12, 32, 20), random_images(10, 32, 21, brightness=0.9)
    features = extract_features(network, [real])
    images = torch.from_numpy(real).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        expected = classifier.backbone(classifier.stem(codec.encode(images)[0]))
    torch.testing.assert_close(features.float(), expected, rtol=1e-4, atol=1e-5)
    assert features.shape == (12, 512)
    ours = fid(features, extract_features(network, [synthetic]))
    assert ours == pytest.approx(torchmetrics_fid(network, real, synthetic), rel=1e-3)
