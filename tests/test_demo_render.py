"""The demo renderer: deterministic bytes, geometry, skin colour in the requested Fitzpatrick band, and
malignancy cues that differ between classes."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image, ImageFilter

from pipelines.demo_data.render import SKIN_TYPES, render_dermoscopy, sample_skin_lab
from pipelines.skin_tone import (
    fitzpatrick_from_ita,
    healthy_skin_mask,
    ita_degrees,
    measure_skin_tone,
    srgb_to_lab,
)

# Kinyanjui bands (DATA.md §5), open ends capped where the renderer caps them.
KINYANJUI_BANDS = {1: (55, 70), 2: (41, 55), 3: (28, 41), 4: (19, 28), 5: (10, 19), 6: (-30, 10)}


def _sha256(image: Image.Image) -> str:
    return hashlib.sha256(image.tobytes()).hexdigest()


def test_same_seed_same_bytes():
    first = render_dermoscopy(np.random.default_rng(42), 3, malignant=True)
    second = render_dermoscopy(np.random.default_rng(42), 3, malignant=True)
    assert _sha256(first) == _sha256(second)
    assert _sha256(render_dermoscopy(np.random.default_rng(43), 3, malignant=True)) != _sha256(first)


def test_mode_and_size():
    image = render_dermoscopy(np.random.default_rng(0), 1, malignant=False)
    assert (image.mode, image.size) == ("RGB", (256, 192))
    small = render_dermoscopy(np.random.default_rng(0), 6, malignant=True, size=(128, 96))
    assert (small.mode, small.size) == ("RGB", (128, 96))


def test_rejects_unknown_fitzpatrick():
    with pytest.raises(ValueError, match="expected 1..6"):
        render_dermoscopy(np.random.default_rng(0), 7, malignant=False)


def test_vignette_corners_dark_when_present():
    dark_corner_counts = []
    for seed in range(30):
        rgb = np.asarray(render_dermoscopy(np.random.default_rng(seed), seed % 6 + 1, malignant=False))
        grey = rgb.astype(np.float64).mean(axis=2)
        patches = [grey[:4, :4], grey[:4, -4:], grey[-4:, :4], grey[-4:, -4:]]
        corners = np.array([patch.mean() for patch in patches])
        centre = np.median(grey[48:144, 64:192])
        dark = corners < 0.5 * centre  # outside the field circle, or on its soft edge
        # A vignette is black, not a mild shading: the corner pixel itself is near 0.
        corner_pixels = np.array([grey[0, 0], grey[0, -1], grey[-1, 0], grey[-1, -1]])
        assert not dark.any() or corner_pixels.min() < 0.05 * centre, (
            f"seed {seed}: {corner_pixels}, {centre}"
        )
        dark_corner_counts.append(int(dark.sum()))
    # Mostly vignetted; sometimes the field circle clears the frame (no dark corner at all).
    assert dark_corner_counts.count(4) >= 15 and dark_corner_counts.count(0) >= 2, dark_corner_counts


@pytest.mark.parametrize("fitzpatrick", range(1, 7))
def test_sampled_skin_ita_in_kinyanjui_band(fitzpatrick):
    rng = np.random.default_rng(fitzpatrick)
    lab = np.array([sample_skin_lab(rng, fitzpatrick) for _ in range(200)])
    ita = ita_degrees(lab[:, 0], lab[:, 2])
    low, high = KINYANJUI_BANDS[fitzpatrick]
    assert low < ita.min() and ita.max() <= high
    assert {fitzpatrick_from_ita(float(v)) for v in ita} == {fitzpatrick}
    assert (lab[:, 2] > 0).all()  # skin is yellowish: b* > 0
    assert 30 < lab[:, 0].min() and lab[:, 0].max() < 90


def test_rendered_skin_measures_in_its_band():
    # The healthy-skin pixels of a rendered image (measure_skin_tone's mask: no vignette, hair or lesion)
    # give an ITA inside the requested type's band, up to 1 degree of rendering noise.
    for fitzpatrick in range(1, 7):
        low, high = KINYANJUI_BANDS[fitzpatrick]
        for seed in range(4):
            image = render_dermoscopy(np.random.default_rng([fitzpatrick, seed]), fitzpatrick, seed % 2 == 0)
            ita = measure_skin_tone(np.asarray(image)).ita
            assert low - 1 < ita <= high + 1, f"type {fitzpatrick} seed {seed}: ITA {ita:.2f}"


def _lesion_statistics(image: Image.Image) -> tuple[float, float, float]:
    """(area fraction, isoperimetric ratio, centre contrast in L*) of the pixels clearly darker than skin."""
    lab = srgb_to_lab(np.asarray(image))
    l_star = lab[..., 0]
    skin = float(np.median(l_star[healthy_skin_mask(lab)]))
    dark = ((l_star < skin - 10) & (l_star > 20)).astype(np.uint8) * 255
    # A 5-px opening drops hair strands (<= 3 px wide), keeps the lesion body.
    opened = Image.fromarray(dark).filter(ImageFilter.MinFilter(5)).filter(ImageFilter.MaxFilter(5))
    mask = np.asarray(opened) > 0
    core = mask[1:-1, 1:-1]
    boundary = core & ~(mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:])
    irregularity = boundary.sum() ** 2 / (4 * np.pi * max(mask.sum(), 1))  # ~1 for a disc, larger if ragged
    height, width = l_star.shape
    centre = float(np.median(l_star[height // 2 - 4 : height // 2 + 5, width // 2 - 4 : width // 2 + 5]))
    return float(mask.mean()), float(irregularity), skin - centre


def test_malignant_lesions_larger_and_more_irregular():
    # Types I-III, where the lesion stands out clearly from the skin; 20 draws per class.
    stats = {
        malignant: np.array(
            [
                _lesion_statistics(
                    render_dermoscopy(np.random.default_rng([7, i, malignant]), 1 + i % 3, malignant)
                )
                for i in range(20)
            ]
        ).mean(axis=0)
        for malignant in (False, True)
    }
    benign, malignant = stats[False], stats[True]
    area, irregularity = (
        f"benign {benign[0]:.3f}, malignant {malignant[0]:.3f}",
        f"{benign[1]:.2f} / {malignant[1]:.2f}",
    )
    assert malignant[0] > 1.4 * benign[0], f"mean lesion area ratio: {area}"
    assert malignant[1] > benign[1] + 0.5, f"mean irregularity benign / malignant: {irregularity}"


def test_lesion_contrast_lower_on_dark_skin():
    contrast = {
        fitzpatrick: np.mean(
            [
                _lesion_statistics(render_dermoscopy(np.random.default_rng([9, i]), fitzpatrick, False))[2]
                for i in range(8)
            ]
        )
        for fitzpatrick in (1, 6)
    }
    assert contrast[1] > 1.8 * contrast[6] > 0, contrast


def test_skin_types_table_is_complete():
    assert sorted(SKIN_TYPES) == [1, 2, 3, 4, 5, 6]
    contrasts = [SKIN_TYPES[t].lesion_contrast for t in range(1, 7)]
    assert contrasts == sorted(contrasts, reverse=True)
