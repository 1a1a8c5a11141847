"""The ITA estimator against colour references that do not come from this project.

The demo renderer and the estimator share the project's Lab conversion and the Kinyanjui bands, so a test on
demo images alone could not see a wrong conversion. Here the reference is independent twice over:
- the published CIELAB values of the X-Rite ColorChecker Classic "light skin" and "dark skin" patches
  (X-Rite's post-November-2014 values), rendered to 8-bit sRGB by scikit-image, must give back their ITA
  within 1 degree through the pipeline's own estimator (`measure_skin_tone`);
- scikit-image's `rgb2lab` must agree with the project's `srgb_to_lab` on every 8-bit colour of a grid.

ColorChecker values are published for D50; both conversions here use D65, so the patches are read as D65
colours. ITA depends only on L* and b*, and the round trip Lab -> sRGB -> Lab is what is tested.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.skin_tone.color import srgb_to_lab
from pipelines.skin_tone.ita import ita_degrees, measure_skin_tone

skimage_color = pytest.importorskip("skimage.color")

# (L*, a*, b*) of the ColorChecker Classic patches 1 and 2 (X-Rite, 2014 formulation).
COLORCHECKER = {
    "light_skin": (65.711, 18.130, 17.810),
    "dark_skin": (37.986, 13.555, 14.059),
}


@pytest.mark.parametrize("patch", sorted(COLORCHECKER))
def test_colorchecker_patch_gives_its_published_ita(patch: str):
    lab = np.array(COLORCHECKER[patch], dtype=np.float64)
    expected = float(ita_degrees(lab[0], lab[2]))
    rgb = skimage_color.lab2rgb(lab.reshape(1, 1, 3), illuminant="D65")  # independent Lab -> sRGB
    image = np.broadcast_to(np.rint(np.clip(rgb, 0, 1) * 255).astype(np.uint8), (96, 96, 3)).copy()
    measured = measure_skin_tone(image)
    assert measured.n_pixels == 96 * 96  # a uniform patch: all of it is skin
    assert abs(measured.ita - expected) < 1.0, (patch, measured.ita, expected)


def test_published_itas_fall_in_the_expected_bands():
    # light skin ~41.4 degrees (Fitzpatrick II by Kinyanjui: 41-55), dark skin ~-40.5 (VI: <= 10)
    light, dark = (measure_skin_tone(np.broadcast_to(
        np.rint(np.clip(skimage_color.lab2rgb(np.array(COLORCHECKER[p]).reshape(1, 1, 3)), 0, 1) * 255)
        .astype(np.uint8), (64, 64, 3)).copy()) for p in ("light_skin", "dark_skin"))
    assert light.fitzpatrick_estimate == 2 and light.group == "A"
    assert dark.fitzpatrick_estimate == 6 and dark.group == "C"


def test_project_lab_conversion_agrees_with_scikit_image():
    levels = np.arange(0, 256, 15, dtype=np.uint8)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 1, 3)
    ours = srgb_to_lab(grid)
    reference = skimage_color.rgb2lab(grid, illuminant="D65", observer="2")
    assert np.abs(ours - reference).max() < 5e-3
