"""Downstream classifiers (issue 6 §1): dataset, augmentations, local weights, resume, early stopping, the stage."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from pipelines.downstream_classifiers import DownstreamParams, run_downstream_classifiers
from pipelines.downstream_classifiers.sources import synthetic_items
from pipelines.fairness.params import FairnessParams
from pipelines.fairness.predictions import PREDICTION_COLUMNS, read_predictions, validate_predictions
from pipelines.fairness.report import run_fairness_report
from pipelines.fairness.threshold import choose_threshold
from pipelines.synthetic_shards.shard_files import SyntheticSample, write_shard
from training.downstream.augment import AugmentationSettings, apply_augmentation, draw_augmentation
from training.downstream.data_order import TrainingOrder
from training.downstream.dataset import ImageDataset, ImageItem
from training.downstream.early_stopping import EarlyStopping
from training.downstream.evaluate import predict_scores, roc_auc
from training.downstream.images import ImageSource, decode_image, tar_members
from training.downstream.model import create_backbone, load_classifier
from training.downstream.train import train_classifier
from training.latent_shards.manifest import FORMAT

BACKBONE = "mobilenetv3_small_050"
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
TOY = dict(backbone=BACKBONE, image_size=32, batch_size=8, eval_batch_size=64, lr=1e-3, seed=3)


@pytest.fixture(autouse=True)
def _offline_single_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never reach a hub, whatever timm tries
    # One intra-op thread: on a shared 2-core machine two spinning threads per process can be 20x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _square(label: int, rng: np.random.Generator, size: int = 24) -> np.ndarray:
    """Bright (malignant) or dark (benign) noisy square: separable by mean brightness alone."""
    base = rng.uniform(140, 230) if label else rng.uniform(30, 120)
    return np.clip(rng.normal(base, 20, (size, size, 3)), 0, 255).astype(np.uint8)


def _toy_items(folder: Path, n: int, prefix: str, seed: int, suffix: str = ".png") -> list[ImageItem]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        label = i % 2
        path = folder / f"{prefix}{i:03d}{suffix}"
        Image.fromarray(_square(label, rng)).save(path, quality=95)
        items.append(ImageItem(f"{prefix}{i:03d}", ImageSource(str(path)), label))
    return items


def _pattern() -> np.ndarray:
    """40 x 30 RGB with four flat coloured quadrants: any rotation or flip of it is visible."""
    image = np.zeros((30, 40, 3), np.uint8)
    image[:15, :20] = (220, 30, 30)
    image[:15, 20:] = (30, 220, 30)
    image[15:, :20] = (30, 30, 220)
    image[15:, 20:] = (230, 230, 40)
    return image


# -- one dataset interface -----------------------------------------------------------------------------


def test_jpeg_with_exif_orientation_png_and_tar_png_read_alike(tmp_path: Path) -> None:
    original = Image.fromarray(_pattern())
    original.save(tmp_path / "image.png")
    # Stored rotated 90° counter-clockwise with EXIF orientation 6 ("rotate 90° clockwise to display"):
    # a reader that ignores the tag sees a rotated image.
    stored = original.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "tagged.jpg", quality=95, subsampling=0, exif=exif.tobytes())
    stored.save(tmp_path / "untagged.jpg", quality=95, subsampling=0)
    sample = SyntheticSample(key="synthetic-x-00000000", latent=np.zeros((4, 2, 2), np.float16),
                             attributes={"label": 1, "split": "synthetic"}, image=_pattern())
    write_shard(tmp_path / "shard.tar", [sample])
    member = tar_members(tmp_path / "shard.tar", "png")["synthetic-x-00000000"]

    sources = {"png": ImageSource(str(tmp_path / "image.png")), "jpeg": ImageSource(str(tmp_path / "tagged.jpg")),
               "tar": member, "untagged": ImageSource(str(tmp_path / "untagged.jpg"))}
    pixels = {name: decode_image(source, 16) for name, source in sources.items()}
    assert all(p.dtype == torch.uint8 and p.shape == (3, 16, 16) for p in pixels.values())
    assert torch.equal(pixels["tar"], pixels["png"])  # PNG is lossless: same bytes of pixels
    jpeg_error = (pixels["jpeg"].float() - pixels["png"].float()).abs().mean() / 255
    untagged_error = (pixels["untagged"].float() - pixels["png"].float()).abs().mean() / 255
    assert jpeg_error < 0.03 and untagged_error > 0.2, (jpeg_error, untagged_error)
    # The centre square crop of the 40 x 30 image keeps columns 5..34: red top-left, yellow bottom-right.
    assert pixels["jpeg"][:, 2, 2].tolist() == pytest.approx([220, 30, 30], abs=12)
    assert pixels["jpeg"][:, 13, 13].tolist() == pytest.approx([230, 230, 40], abs=12)

    dataset = ImageDataset([ImageItem(n, s, 0) for n, s in sources.items()], 16, MEAN, STD)
    (png, label), (jpeg, _) = dataset[0], dataset[1]
    assert png.dtype == jpeg.dtype == torch.float32 and png.shape == jpeg.shape == (3, 16, 16)
    assert label.item() == 0.0
    assert torch.allclose(png, (pixels["png"].float() / 255 - 0.5) / 0.25)


# -- augmentations (second paper, Appendix B.2) --------------------------------------------------------


def test_augmentations_are_seeded_and_follow_b2(tmp_path: Path) -> None:
    settings = AugmentationSettings()
    assert (settings.rotation_degrees, settings.flip_probability, settings.blur_kernel, settings.blur_sigma) == \
        (30.0, 0.5, 5, (0.1, 2.0))
    draws = [draw_augmentation(settings, torch.Generator().manual_seed(s)) for s in range(2000)]
    angles = np.array([d.angle for d in draws])
    assert np.abs(angles).max() <= 30.0 and angles.min() < -29.0 and angles.max() > 29.0
    assert 0.45 < np.mean([d.horizontal_flip for d in draws]) < 0.55
    assert 0.45 < np.mean([d.vertical_flip for d in draws]) < 0.55
    sigmas = np.array([d.blur_sigma for d in draws])
    assert sigmas.min() >= 0.1 and sigmas.max() <= 2.0

    Image.fromarray(_pattern()).save(tmp_path / "p.png")
    item = ImageItem("p", ImageSource(str(tmp_path / "p.png")), 1)
    dataset = ImageDataset([item], 32, MEAN, STD, augmentation=settings)
    first, again, other = dataset[(0, 11)][0], dataset[(0, 11)][0], dataset[(0, 12)][0]
    assert torch.equal(first, again) and not torch.equal(first, other)
    # The drawn parameters applied by torchvision's own functions give the same tensor.
    draw = draw_augmentation(settings, torch.Generator().manual_seed(11))
    image = decode_image(item.source, 32).float() / 255
    expected = TF.rotate(image, draw.angle, interpolation=InterpolationMode.BILINEAR, fill=0.0)
    expected = TF.horizontal_flip(expected) if draw.horizontal_flip else expected
    expected = TF.vertical_flip(expected) if draw.vertical_flip else expected
    expected = TF.gaussian_blur(expected, [5, 5], [draw.blur_sigma, draw.blur_sigma])
    assert torch.allclose(first, (expected - 0.5) / 0.25)
    assert torch.equal(apply_augmentation(image, draw, 5), expected)
    # The image really turns by the drawn angle: the principal axis of a rotated horizontal line.
    line = torch.zeros(3, 65, 65)
    line[:, 32, 8:57] = 1.0
    for seed in range(5):
        drawn = draw_augmentation(settings, torch.Generator().manual_seed(seed))
        rotated = apply_augmentation(line, type(drawn)(drawn.angle, False, False, None), 5)[0]
        assert _line_angle(rotated) == pytest.approx(drawn.angle, abs=1.0)


def _line_angle(image: torch.Tensor) -> float:
    """Counter-clockwise angle in degrees (image y points down) of the brightness-weighted principal axis."""
    ys, xs = torch.meshgrid(torch.arange(image.shape[0]), torch.arange(image.shape[1]), indexing="ij")
    w = image.clamp(min=0).double()
    x, y = (xs * w).sum() / w.sum(), (ys * w).sum() / w.sum()
    cxx, cyy, cxy = ((xs - x) ** 2 * w).sum(), ((ys - y) ** 2 * w).sum(), ((xs - x) * (ys - y) * w).sum()
    return float(-np.degrees(0.5 * np.arctan2(2 * cxy, cxx - cyy)))


def test_data_order_is_a_function_of_seed_and_step() -> None:
    pooled = TrainingOrder(10, 6, 4, seed=5)
    assert [pooled.batch(s) for s in range(8)] == [TrainingOrder(10, 6, 4, seed=5).batch(s) for s in range(8)]
    assert sorted(sum((pooled.batch(s) for s in range(4)), [])) == list(range(16))  # one epoch = every item once
    mixed = TrainingOrder(10, 6, 4, seed=5, synthetic_per_batch=1)
    batches = [mixed.batch(s) for s in range(30)]
    assert all(sum(i >= 10 for i in b) == 1 for b in batches)  # exactly one synthetic image per batch
    assert sorted(i for b in batches[:6] for i in b if i >= 10) == list(range(10, 16))
    assert pooled.augmentation_seed(3, 1) != pooled.augmentation_seed(3, 2)


# -- model ---------------------------------------------------------------------------------------------


def test_pretrained_weights_load_from_a_local_file(tmp_path: Path) -> None:
    torch.manual_seed(123)
    reference = timm.create_model(BACKBONE)  # an ImageNet-shaped file: 1000-class head
    weights = {k: v.contiguous() for k, v in reference.state_dict().items()}
    save_file(weights, str(tmp_path / "backbone.safetensors"))

    torch.manual_seed(0)
    loaded = create_backbone(BACKBONE, tmp_path / "backbone.safetensors").state_dict()
    torch.manual_seed(0)
    random = create_backbone(BACKBONE).state_dict()
    head = reference.pretrained_cfg["classifier"]
    body = [k for k in weights if not k.startswith(head + ".")]
    assert len(body) == len(weights) - 2 and len(body) > 100
    assert all(torch.equal(loaded[k], weights[k]) for k in body)
    assert not all(torch.equal(random[k], weights[k]) for k in body if weights[k].is_floating_point())
    assert loaded[f"{head}.weight"].shape[0] == 1  # our one-logit head, freshly initialised
    assert torch.equal(loaded[f"{head}.weight"], random[f"{head}.weight"])
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        create_backbone(BACKBONE, tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match="not a timm model"):
        create_backbone("resnet_does_not_exist")


# -- training ------------------------------------------------------------------------------------------


class Crash(RuntimeError):
    pass


def test_resume_equals_uninterrupted(tmp_path: Path) -> None:
    train = _toy_items(tmp_path / "img", 12, "t", seed=0)
    synthetic = _toy_items(tmp_path / "img", 6, "s", seed=1)
    val = _toy_items(tmp_path / "img", 6, "v", seed=2)
    params = DownstreamParams(**TOY, max_steps=8, eval_every=2, patience=10, checkpoint_every=4,
                              synthetic_mixing="fraction", synthetic_fraction=0.25)
    aucs = {2: 0.5, 4: 0.6, 6: 0.7, 8: 0.8}  # scripted: the best weights are the last ones

    whole = train_classifier(params, train, synthetic, val, tmp_path / "whole", evaluate=lambda m, s: aucs[s])

    def crash_at_6(model: torch.nn.Module, step: int) -> float:
        if step == 6:
            raise Crash("killed after the step-4 checkpoint")
        return aucs[step]

    with pytest.raises(Crash):
        train_classifier(params, train, synthetic, val, tmp_path / "resumed", evaluate=crash_at_6)
    # beside the run folder, not in it: the run folder is a DVC out, checkpoints are resumable state
    assert [p.name for p in (tmp_path / "checkpoints" / "resumed").glob("step_*")] == ["step_00000004"]
    assert not (tmp_path / "resumed" / "checkpoints").exists()
    resumed = train_classifier(params, train, synthetic, val, tmp_path / "resumed", evaluate=lambda m, s: aucs[s])

    assert resumed.resumed_from == 4 and resumed.steps == whole.steps == 8
    assert resumed.history == whole.history
    a, b = load_file(str(whole.weights)), load_file(str(resumed.weights))
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6, rtol=0) for k in a)
    # Training moved the weights (the comparison is not between two untouched initialisations).
    torch.manual_seed(params.seed)
    initial = create_backbone(BACKBONE).state_dict()
    assert max((a[k].float() - initial[k].float()).abs().max().item() for k in a) > 1e-3
    # A finished run is not retrained: calling again returns its result from the last checkpoint.
    again = train_classifier(params, train, synthetic, val, tmp_path / "resumed", evaluate=crash_at_6)
    assert again.resumed_from == 8 and again.steps == 8


def test_checkpoints_every_minutes_of_work_outside_the_run_folder(tmp_path: Path) -> None:
    """The cadence is minutes of work (an injected clock: 25 s per reading), not steps; the latest k stay, in the
    folder given, and an older version's checkpoints inside the run folder are taken over."""
    items = _toy_items(tmp_path / "img", 8, "t", seed=0)
    params = DownstreamParams(**TOY, max_steps=9, eval_every=3, patience=10, checkpoint_every_minutes=1,
                              keep_checkpoints=2)
    readings = iter(range(0, 10_000, 25))
    result = train_classifier(params, items, [], items, tmp_path / "runs" / "a", evaluate=lambda m, s: s / 10,
                              checkpoint_dir=tmp_path / "ckpt" / "a", clock=lambda: next(readings))
    # readings 0 (start), 25, 50, 75 at step 3 (>= 60 s: save, restart at 100), 125, 150, 175 at step 6 (save,
    # 200), 225 at step 7, 250 at step 8, and step 9 ends the run; keep 2 of {3, 6, 9}
    assert sorted(p.name for p in (tmp_path / "ckpt" / "a").iterdir()) == ["step_00000006", "step_00000009"]
    assert result.steps == 9 and not (tmp_path / "runs" / "a" / "checkpoints").exists()
    legacy = tmp_path / "runs" / "a" / "checkpoints"
    (tmp_path / "ckpt" / "a").rename(legacy)  # the layout of an older version
    again = train_classifier(params, items, [], items, tmp_path / "runs" / "a", evaluate=lambda m, s: s / 10,
                             checkpoint_dir=tmp_path / "ckpt" / "a")
    assert again.resumed_from == 9 and not legacy.exists() and (tmp_path / "ckpt" / "a" / "step_00000009").is_dir()


def test_early_stopping_on_a_scripted_auc_sequence(tmp_path: Path) -> None:
    stopping = EarlyStopping(patience=3)
    sequence = [0.5, 0.6, 0.7, 0.65, 0.69, 0.7, 0.9]
    improved = []
    for i, auc in enumerate(sequence):
        improved.append(stopping.update(2 * (i + 1), auc))
        if stopping.should_stop:
            break
    assert improved == [True, True, True, False, False, False]  # 0.7 after 0.7 is no gain
    assert stopping.best_step == 6 and stopping.best_auc == 0.7
    assert EarlyStopping.from_state(stopping.state_dict()) == stopping

    items = _toy_items(tmp_path / "img", 8, "t", seed=0)
    params = DownstreamParams(**TOY, max_steps=40, eval_every=2, patience=3, checkpoint_every=100)
    seen, kept = [], {}

    def scripted(model: torch.nn.Module, step: int) -> float:
        seen.append(step)
        if step == 6:
            kept.update({k: v.detach().clone() for k, v in model.state_dict().items()})
        return sequence[step // 2 - 1]

    result = train_classifier(params, items, [], items, tmp_path / "run", evaluate=scripted)
    assert seen == [2, 4, 6, 8, 10, 12]  # best at 6, then three evaluations without a gain
    assert result.steps == 12 and result.stopped_early and result.best_step == 6 and result.best_val_auc == 0.7
    assert result.summary()["early_stop_step"] == 12
    saved = load_file(str(result.weights))
    assert all(torch.equal(saved[k], kept[k]) for k in kept)  # the best-validation weights are the ones kept


def test_toy_classifier_separates_bright_from_dark(tmp_path: Path) -> None:
    train = _toy_items(tmp_path / "img", 32, "t", seed=0)
    val = _toy_items(tmp_path / "img", 16, "v", seed=1, suffix=".jpg")
    params = DownstreamParams(**TOY, max_steps=30, eval_every=5, patience=6)
    result = train_classifier(params, train, [], val, tmp_path / "run")
    assert result.best_val_auc > 0.9, result.history
    model, config = load_classifier(result.weights)
    dataset = ImageDataset(val, config.image_size, config.mean, config.std)
    assert roc_auc(dataset.labels.numpy(), predict_scores(model, dataset, 64)) == pytest.approx(result.best_val_auc)


# -- the stage -----------------------------------------------------------------------------------------


def _stage_inputs(root: Path) -> tuple[Path, Path, Path]:
    rng = np.random.default_rng(7)
    rows = []
    for split, n in (("train", 16), ("val", 8), ("test", 10)):
        for i in range(n):
            isic_id = f"ISIC_{len(rows):07d}"
            label = i % 2
            path = root / "raw" / f"{isic_id}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_square(label, rng, 30)).save(path, quality=95)
            rows.append({"isic_id": isic_id, "sources": "isic2016:test|isic2019:train", "split": split,
                         "image_path": f"raw/{isic_id}.jpg", "label": label, "skin_tone_group": "ABC"[i % 3],
                         "sex": ["male", "female", None][i % 3], "age_approx": [40.0, np.nan][i % 2],
                         "anatom_site_general": None})
    pd.DataFrame(rows).to_parquet(root / "lesions.parquet")
    external = []
    for i in range(6):
        path = root / "raw" / "ddi" / f"{i:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_square(i % 2, rng, 20)).save(path)
        external.append({"dataset": "ddi", "image_id": f"{i:06d}", "image_path": f"raw/ddi/{i:06d}.png",
                         "label": i % 2, "skin_tone_group": "ABC"[i % 3], "sex": None, "age_approx": np.nan,
                         "anatom_site_general": None})
    pd.DataFrame(external).to_parquet(root / "external_sets.parquet")
    samples = [SyntheticSample(key=f"synthetic-c{label}-{j:08d}", latent=np.zeros((4, 2, 2), np.float16),
                               attributes={"label": label, "skin_tone_group": "C", "sex": None,
                                           "split": "synthetic", "synthetic": True},
                               image=_square(label, rng, 16))
               for label in (0, 1) for j in range(3)]
    shards = root / "synthetic" / "shards"
    shards.mkdir(parents=True)
    write_shard(shards / "synthetic-000000.tar", samples)
    digest = hashlib.sha256((shards / "synthetic-000000.tar").read_bytes()).hexdigest()
    (shards / "manifest.json").write_text(json.dumps(  # the synthetic_shards stage's manifest layout
        {"format": FORMAT, "splits": {"synthetic": 6}, "count": 6, "dtype": "float16",
         "shards": [{"shard": "synthetic-000000.tar", "split": "synthetic", "count": 6, "sha256": digest}]}))
    return root / "lesions.parquet", root / "external_sets.parquet", root / "synthetic"


def test_stage_trains_both_and_writes_valid_predictions(tmp_path: Path) -> None:
    lesions, external, synthetic = _stage_inputs(tmp_path)
    items = synthetic_items(synthetic)
    assert [i.label for i in items] == [0, 0, 0, 1, 1, 1] and items[0].key == "synthetic-c0-00000000"
    png = np.array(Image.open(io.BytesIO(items[4].source.read_bytes())))
    assert torch.equal(decode_image(items[4].source, 16), torch.from_numpy(png).permute(2, 0, 1))

    params = DownstreamParams(**TOY, max_steps=6, eval_every=3, patience=5, checkpoint_every=3)
    outputs = run_downstream_classifiers(params, lesions, external, synthetic, tmp_path, tmp_path / "out")

    predictions = read_predictions(outputs.predictions)
    validation = read_predictions(outputs.validation_predictions)
    assert list(predictions.columns) == list(PREDICTION_COLUMNS)
    counts = predictions.groupby(["classifier", "test_set"]).size().to_dict()
    assert counts == {("augmented", "ddi"): 6, ("augmented", "isic_test"): 10,
                      ("baseline", "ddi"): 6, ("baseline", "isic_test"): 10}
    assert not predictions.duplicated(["classifier", "test_set", "image_id"]).any()
    assert set(validation["test_set"]) == {"isic_val"} and len(validation) == 16
    assert validate_predictions(pd.read_parquet(outputs.predictions)).equals(predictions)
    test_rows = predictions[(predictions["classifier"] == "baseline") & (predictions["test_set"] == "isic_test")]
    assert test_rows["source"].unique().tolist() == ["isic2016:test"]
    assert sorted(test_rows["image_id"]) == [f"ISIC_{i:07d}" for i in range(24, 34)]
    assert set(predictions.loc[predictions["test_set"] == "ddi", "sex"]) == {"unknown"}

    configs = {name: json.loads((outputs.runs / name / "run.json").read_text()) for name in ("baseline", "augmented")}
    assert configs["baseline"]["seed"] == configs["augmented"]["seed"] == 3
    assert configs["baseline"]["max_steps"] == configs["augmented"]["max_steps"] == 6
    assert configs["baseline"]["params"] == configs["augmented"]["params"]
    assert (configs["baseline"]["train_synthetic"], configs["augmented"]["train_synthetic"]) == (0, 6)
    assert configs["baseline"]["train_real"] == configs["augmented"]["train_real"] == 16
    # checkpoints are resumable state, beside the DVC out `runs` rather than in it
    assert not list(outputs.runs.glob("*/checkpoints"))
    assert sorted(p.name for p in (tmp_path / "out" / "checkpoints" / "augmented").iterdir()) == [
        "step_00000003", "step_00000006"]

    summary = outputs.summary
    for name in ("baseline", "augmented"):
        rows = validation[validation["classifier"] == name]
        assert summary["classifiers"][name]["threshold"] == choose_threshold(rows["label"], rows["score"])
        assert summary["classifiers"][name]["steps"] == 6
        assert summary["classifiers"][name]["auc"]["isic_val"] == pytest.approx(
            summary["classifiers"][name]["best_val_auc"], abs=1e-6)
    assert summary["test_sets"] == {"isic_test": 10, "ddi": 6}
    assert json.loads(outputs.summary_json.read_text())["classifiers"]["augmented"]["train_synthetic"] == 6

    # A rerun resumes both finished runs (nothing is retrained) and predicts the same scores.
    again = run_downstream_classifiers(params, lesions, external, synthetic, tmp_path, tmp_path / "out")
    assert {c["resumed_from"] for c in again.summary["classifiers"].values()} == {6}
    assert read_predictions(again.predictions).equals(predictions)
    # The fairness report reads both files as they are.
    report = run_fairness_report(outputs.predictions, outputs.validation_predictions,
                                 FairnessParams(bootstrap_samples=0), tmp_path / "fairness")
    assert report.summary["classifiers"] == ["baseline", "augmented"]
    assert report.summary["test_sets"] == ["isic_test", "ddi", "ddi_A", "ddi_B", "ddi_C"]
    assert report.summary["thresholds"]["augmented"]["threshold"] == summary["classifiers"]["augmented"]["threshold"]
