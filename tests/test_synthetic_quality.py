"""The synthetic_quality audit and gate: it passes a generator that draws what it is asked, and fails one that
draws noise or copies its training images. Real images come from the demo renderer (known skin tone and label);
the "generators" stand in for the DiT by replacing the audit's sampler, so every measurement below is the
stage's own (reference network, ITA estimator, FID, nearest neighbours)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from pipelines.demo_data.render import render_dermoscopy
from pipelines.generation_report import synthetic_quality
from pipelines.generation_report.fid import fid
from pipelines.generation_report.params import QualityParams
from pipelines.generation_report.quality import gate, memorization, split_halves
from pipelines.generation_report.synthetic_quality import JudgedModel, run_synthetic_quality

SIDE = 64
TYPES = {"A": (1, 2), "B": (3, 4), "C": (5, 6)}


def render(label: int, group: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = render_dermoscopy(rng, int(rng.choice(TYPES[group])), bool(label), (SIDE, SIDE))
    return np.asarray(image)


@pytest.fixture(scope="module")
def real_data(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("quality")
    rows = []
    for i in range(150):
        label, group = int(i % 3 == 0), "ABC"[(i // 3) % 3]
        split = "train" if i < 90 else ("val" if i < 120 else "test")
        path = root / f"img_{i:03d}.png"
        Image.fromarray(render(label, group, i)).save(path)
        rows.append({"isic_id": f"ISIC_{i:07d}", "image_path": path.name, "label": label, "split": split,
                     "skin_tone_group": group})
    return pd.DataFrame(rows), root


def audit(real_data, tmp_path, monkeypatch, draw) -> dict:
    lesions, root = real_data
    monkeypatch.setattr(synthetic_quality, "draw_audit_samples", lambda model, decode, asked, sampling, desc="":
                        np.stack([draw(int(r.label), r.skin_tone_group, k) for k, r in
                                  enumerate(asked.itertuples(index=False))]))
    params = QualityParams(min_samples=60, reference_steps=150, reference_batch_size=32)
    return run_synthetic_quality(params, lesions, root, SIDE, None, {"class_n_diff": JudgedModel(None, None)},
                                 tmp_path).report


def test_a_generator_that_draws_what_it_is_asked_passes(real_data, tmp_path, monkeypatch):
    report = audit(real_data, tmp_path, monkeypatch, lambda label, group, k: render(label, group, 10_000 + k))
    assert report["skin_tone_agreement_real_heldout"] == 1.0
    assert report["skin_tone_agreement"] > 0.9
    assert report["fid_ratio"] < 3.0  # a fresh draw from the same renderer is as close as the other real half
    assert report["label_auc"] > 0.7
    assert report["memorized_fraction"] < 0.2
    assert min(report["models"]["class_n_diff"]["skin_colour_plausible_by_group"].values()) >= 0.9
    assert report["passed"], report["failures"]
    assert (tmp_path / "quality.json").is_file() and (tmp_path / "class_n_diff_grid_by_cell.png").is_file()


def test_a_noise_generator_fails(real_data, tmp_path, monkeypatch):
    noise = np.random.default_rng(0)
    report = audit(real_data, tmp_path, monkeypatch,
                   lambda label, group, k: noise.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8))
    assert not report["passed"]
    failed = " ".join(report["failures"])
    assert "fid_ratio" in failed and "skin_tone_agreement" in failed and "label_auc" in failed


def test_navy_dark_skin_fails_on_skin_colour_whatever_its_ita(real_data, tmp_path, monkeypatch):
    def draw(label: int, group: str, k: int) -> np.ndarray:
        image = render(label, group, 10_000 + k)
        # FST V-VI drawn navy: blue and red channels swapped, so b* < 0. L* stays dark, so the ITA estimator
        # (atan2(L* - 50, b*)) still calls most of it "dark"; only its colour is impossible for skin.
        return image[..., ::-1].copy() if group == "C" else image

    report = audit(real_data, tmp_path, monkeypatch, draw)
    by_group = report["models"]["class_n_diff"]["skin_colour_plausible_by_group"]
    assert by_group["A"] >= 0.9 and by_group["B"] >= 0.9 and by_group["C"] < 0.2
    assert report["skin_colour_plausible_worst_group"] == by_group["C"]
    assert any("skin_colour_plausible_worst_group" in f for f in report["failures"])


def test_a_copying_generator_fails_on_memorisation(real_data, tmp_path, monkeypatch):
    lesions, _ = real_data
    train = lesions[lesions["split"] == "train"].reset_index(drop=True)
    copies = {(int(r.label), r.skin_tone_group): [] for r in train.itertuples()}
    for i, r in enumerate(train.itertuples()):
        copies[(int(r.label), r.skin_tone_group)].append(render(int(r.label), r.skin_tone_group, i))
    report = audit(real_data, tmp_path, monkeypatch,
                   lambda label, group, k: copies[(label, group)][k % len(copies[(label, group)])])
    assert report["memorized_fraction"] > 0.9
    assert any("memorized_fraction" in f for f in report["failures"])


def test_memorisation_threshold_is_the_heldout_5th_percentile():
    generator = torch.Generator().manual_seed(0)
    train, heldout = torch.randn(200, 8, generator=generator), torch.randn(100, 8, generator=generator)
    copied = memorization(train[:50] + 1e-6, heldout, train)
    fresh = memorization(torch.randn(400, 8, generator=generator), heldout, train)
    assert copied["memorized_fraction"] == 1.0
    assert 0.0 < fresh["memorized_fraction"] < 0.15  # ~0.05 for draws from the same distribution
    assert copied["threshold"] == pytest.approx(np.percentile(torch.cdist(heldout, train).min(1).values.numpy(), 5))


def test_halves_split_every_cell_evenly():
    attributes = pd.DataFrame({"label": [0] * 7 + [1] * 4, "skin_tone_group": ["A"] * 5 + ["C"] * 2 + ["A"] * 4})
    halves = split_halves(attributes, seed=0)
    assert len(set(halves.a) | set(halves.b)) == 11 and not set(halves.a) & set(halves.b)
    cells = attributes.assign(half=["a" if i in set(halves.a) else "b" for i in range(11)])
    counts = cells.groupby(["label", "skin_tone_group", "half"]).size().to_dict()
    assert counts == {(0, "A", "a"): 3, (0, "A", "b"): 2, (0, "C", "a"): 1, (0, "C", "b"): 1,
                      (1, "A", "a"): 2, (1, "A", "b"): 2}


def test_gate_limits_decide_both_ways():
    limits = QualityParams().limits()
    good = {"fid_ratio": 2.0, "skin_tone_agreement": 0.9, "label_auc": 0.9, "memorized_fraction": 0.05,
            "skin_colour_plausible_worst_group": 0.95, "shards": {"skin_tone_agreement": 0.9}}
    assert gate(good, limits, "q.json").success
    for key, bad in (("fid_ratio", 1e3), ("skin_tone_agreement", 0.1), ("label_auc", 0.5),
                     ("memorized_fraction", 0.9), ("skin_colour_plausible_worst_group", 0.3)):
        report = gate(good | {key: bad}, limits, "q.json")
        assert not report.success and [o.column for o in report.failures] == [key]
    report = gate(good | {"shards": {"skin_tone_agreement": 0.2}}, limits, "q.json")
    assert [o.column for o in report.failures] == ["shards.skin_tone_agreement"]
    assert not gate(good | {"label_auc": None}, limits, "q.json").success  # a missing number never passes


def test_fid_of_a_half_against_itself_is_zero():
    features = torch.randn(64, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert fid(features, features) == pytest.approx(0.0, abs=1e-8)
