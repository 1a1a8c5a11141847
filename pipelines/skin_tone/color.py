"""sRGB <-> CIELAB (D65, 2° observer), vectorised numpy; the one place the colour maths lives.

Matches skimage's `rgb2lab` (the conversion DATA.md §5 refers to) to ~1e-3 in L*a*b*: sRGB transfer curve
and primaries from IEC 61966-2-1, CIE 1976 L*a*b* with the CIE's exact 216/24389 and 24389/27 constants.
"""

from __future__ import annotations

import numpy as np

# Linear sRGB -> CIE XYZ (D65), IEC 61966-2-1 primaries at full precision (Lindbloom's table).
SRGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
XYZ_TO_SRGB = np.linalg.inv(SRGB_TO_XYZ)
# Reference white = XYZ of sRGB (1, 1, 1), i.e. D65 (0.95047, 1.0, 1.08883) to 7 digits; taking it from the
# matrix makes white map to exactly a* = b* = 0.
WHITE_D65 = SRGB_TO_XYZ.sum(axis=1)

# CIE 1976: f(t) = t^(1/3) above (6/29)^3, linear below.
_DELTA = 6.0 / 29.0


def _as_float(values: np.ndarray) -> np.ndarray:
    """Float arrays keep their precision (float32 halves the renderer's time); anything else -> float64."""
    values = np.asarray(values)
    return values if np.issubdtype(values.dtype, np.floating) else values.astype(np.float64)


def srgb_to_linear(srgb: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear light (IEC 61966-2-1 transfer curve)."""
    srgb = _as_float(srgb)
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear light -> sRGB-encoded values, clipped to [0, 1]."""
    linear = np.clip(_as_float(linear), 0.0, 1.0)
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1.0 / 2.4) - 0.055)


# uint8 input is the common case (whole images): a 256-entry table avoids a pow() per pixel.
_LINEAR_OF_UINT8 = srgb_to_linear(np.arange(256) / 255.0)


def linear_to_lab(linear: np.ndarray) -> np.ndarray:
    """Linear sRGB (..., 3) -> CIELAB (..., 3)."""
    xyz = np.asarray(linear, dtype=np.float64) @ SRGB_TO_XYZ.T / WHITE_D65
    f = np.where(xyz > _DELTA**3, np.cbrt(xyz), xyz / (3 * _DELTA**2) + 4.0 / 29.0)
    lab = np.empty_like(f)
    lab[..., 0] = 116.0 * f[..., 1] - 16.0
    lab[..., 1] = 500.0 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200.0 * (f[..., 1] - f[..., 2])
    return lab


def lab_to_linear(lab: np.ndarray) -> np.ndarray:
    """CIELAB (..., 3) -> linear sRGB (..., 3), unclipped (out-of-gamut colours leave [0, 1])."""
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    xyz = np.where(f > _DELTA, f**3, 3 * _DELTA**2 * (f - 4.0 / 29.0)) * WHITE_D65
    return xyz @ XYZ_TO_SRGB.T


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB (..., 3) -> CIELAB (..., 3). uint8 input is read as 0..255, anything else as floats in [0, 1]."""
    rgb = np.asarray(rgb)
    linear = _LINEAR_OF_UINT8[rgb] if rgb.dtype == np.uint8 else srgb_to_linear(rgb)
    return linear_to_lab(linear)


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """CIELAB (..., 3) -> sRGB floats in [0, 1] (out-of-gamut colours are clipped per channel)."""
    return linear_to_srgb(lab_to_linear(lab))
