"""Individual typology angle (ITA) of the healthy skin in a dermoscopic RGB image.

Recipe (DATA.md §5, "practical recipe"; median statistics after Benčević et al. 2025):
1. CIELAB (D65) of every pixel.
2. Drop the dermoscope's black field stop: pixels darker than L* 20 that survive a 9-px opening (hair is
   thinner and disappears), grown by 12 px to also drop the darkened rim just inside the circle.
3. Drop hair: a grey closing of L* (7 px) fills thin dark strands; pixels the closing lifts by more than
   6 L* units are hair (the "black-hat" filter of Bevan & Atapour-Abarghouei 2022, numpy instead of OpenCV).
4. Drop the lesion: on the hair-free (closed) L*, pixels more than max(4, 2.5 sd) below the skin's L* mode,
   grown by 6 px to include the lesion's soft edge. No segmentation model: the skin is the dominant, lightest
   large mode of a dermoscopic image, the lesion is darker (pigmented) - this fails for amelanotic lesions
   and for a lesion filling the frame (then too few pixels remain and the result is "unknown").
5. Median L* and b* of what is left; ITA = atan2(L* - 50, b*) in degrees.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pipelines.skin_tone.categories import chardon_category, fitzpatrick_from_ita, fitzpatrick_group
from pipelines.skin_tone.color import srgb_to_lab

# Step 2: the field stop is near black (L* < 5 in ISIC images); dark skin stays above L* ~ 30 (Chardon
# "dark" needs ITA < -30, i.e. L* < 50 - 0.58 b*), so 20 separates the two with margin either side.
VIGNETTE_MAX_L = 20.0
VIGNETTE_OPENING_PX = 9  # wider than hair (1-4 px at 256 px), narrower than any corner of the field stop
VIGNETTE_MARGIN_PX = 12  # the rim darkens over ~10 px inside the circle (lens falloff)
# Step 3: Bevan uses a 17x17 black-hat at 256x256 with threshold 10 on grey levels; 7 px covers strands up
# to ~5 px wide at our 256-px working size and 6 L* units is ~10 grey levels at mid tones.
HAIR_CLOSING_PX = 7
HAIR_MIN_DEPTH_L = 6.0
# Step 4.
LESION_MIN_DROP_L = 4.0  # L* units below the skin mode; above the mottling + illumination spread of skin
LESION_DROP_SD = 2.5
LESION_MARGIN_PX = 6
# Glare / gel bubbles are near white and carry no skin colour.
GLARE_MIN_L = 95.0


@dataclass(frozen=True)
class SkinToneMeasurement:
    ita: float  # degrees, NaN when not measurable
    l_star: float
    b_star: float
    n_pixels: int  # healthy-skin pixels used
    chardon: str  # "very_light" | "light" | "intermediate" | "tan" | "brown" | "dark" | "unknown"
    fitzpatrick_estimate: int | None  # 1..6 by the Kinyanjui thresholds, None when not measurable
    group: str  # "A" (I-II) | "B" (III-IV) | "C" (V-VI) | "unknown"
    a_star: float = math.nan  # median a* (redness) of the same pixels: with b*, the skin's hue and chroma


def ita_degrees(l_star: float | np.ndarray, b_star: float | np.ndarray) -> float | np.ndarray:
    """ITA = atan2(L* - 50, b*) in degrees. Not arctan((L* - 50) / b*), which flips the sign when b* <= 0
    (blue-tinted or black pixels) and labels them "dark" (DATA.md §5, Kalb et al. 2023)."""
    return np.degrees(np.arctan2(np.asarray(l_star) - 50.0, np.asarray(b_star)))[()]


def _rank_filter(image: np.ndarray, size: int, reduce: Callable) -> np.ndarray:
    """Max or min (or / and for masks) of a 2-D array over a size x size square; edges replicated."""
    height, width = image.shape
    padded = np.pad(image, size // 2, mode="edge")
    rows = padded[:, 0:width]
    for shift in range(1, size):
        rows = reduce(rows, padded[:, shift : shift + width])
    out = rows[0:height]
    for shift in range(1, size):
        out = reduce(out, rows[shift : shift + height])
    return out


def _dilate(mask: np.ndarray, size: int) -> np.ndarray:
    return _rank_filter(mask, size, np.logical_or)


def _erode(mask: np.ndarray, size: int) -> np.ndarray:
    return _rank_filter(mask, size, np.logical_and)


def _skin_mode(l_star: np.ndarray) -> tuple[float, float]:
    """Mode of the L* histogram (1-unit bins, lightly smoothed) and the spread of the skin above it.

    The spread uses only the light side: the dark side is contaminated by the lesion's edge."""
    hist, edges = np.histogram(l_star, bins=101, range=(-0.5, 100.5))
    smooth = np.convolve(hist, np.ones(3), mode="same")
    mode = float(edges[np.argmax(smooth)] + 0.5)
    above = l_star[l_star > mode] - mode
    spread = float(np.sqrt(np.mean(above**2))) if above.size else 0.0
    return mode, spread


def healthy_skin_mask(lab: np.ndarray) -> np.ndarray:
    """Boolean HxW mask of healthy skin (no field stop, hair, lesion or glare) from a CIELAB image."""
    l_star = lab[..., 0].astype(np.float32)

    dark = l_star < VIGNETTE_MAX_L
    opened = _dilate(_erode(dark, VIGNETTE_OPENING_PX), VIGNETTE_OPENING_PX)
    field_stop = _dilate(opened, 2 * VIGNETTE_MARGIN_PX + 1)

    closed = _rank_filter(_rank_filter(l_star, HAIR_CLOSING_PX, np.maximum), HAIR_CLOSING_PX, np.minimum)
    hair = _dilate(closed - l_star > HAIR_MIN_DEPTH_L, 3)

    candidates = ~field_stop & ~hair & (l_star < GLARE_MIN_L) & ~dark
    if not candidates.any():
        return candidates
    mode, spread = _skin_mode(closed[candidates])
    lesion = closed < mode - max(LESION_MIN_DROP_L, LESION_DROP_SD * spread)
    lesion = _dilate(lesion & ~field_stop, 2 * LESION_MARGIN_PX + 1)
    return candidates & ~lesion


def measure_skin_tone(rgb: np.ndarray, min_pixels: int = 200) -> SkinToneMeasurement:
    """ITA of the healthy skin of an RGB uint8 HxWx3 image (median L*, b* over `healthy_skin_mask`)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb: expected an HxWx3 array, got shape {rgb.shape}")
    lab = srgb_to_lab(rgb)
    mask = healthy_skin_mask(lab)
    n_pixels = int(mask.sum())
    if n_pixels < min_pixels:
        nan = math.nan
        return SkinToneMeasurement(nan, nan, nan, n_pixels, "unknown", None, "unknown")
    l_star = float(np.median(lab[..., 0][mask]))
    b_star = float(np.median(lab[..., 2][mask]))
    a_star = float(np.median(lab[..., 1][mask]))
    ita = float(ita_degrees(l_star, b_star))
    fitzpatrick = fitzpatrick_from_ita(ita)
    return SkinToneMeasurement(
        ita=ita,
        l_star=l_star,
        b_star=b_star,
        n_pixels=n_pixels,
        chardon=chardon_category(ita),
        fitzpatrick_estimate=fitzpatrick,
        group=fitzpatrick_group(fitzpatrick),
        a_star=a_star,
    )
