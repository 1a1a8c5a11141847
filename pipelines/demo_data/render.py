"""Deterministic synthetic dermoscopy-like images for the embedded demo dataset.

An image is built in linear-light RGB, layer by layer: skin of a Fitzpatrick-dependent colour with mild
mottling, a pigmented lesion (melanin modelled as a Beer-Lambert absorber, stronger in blue), coloured
blotches, hair strands, an illumination gradient, the dermoscope's dark circular vignette, then sRGB
encoding and sensor noise. Every random draw comes from the caller's generator, so a seed fixes the bytes.

Malignancy is a probabilistic cue (an "atypia" score drawn around a class-dependent mean), never a rule: some
benign lesions look atypical and some melanomas look banal, as in ISIC. Lesion contrast falls with darker skin
so that a classifier trained on the demo can show the fairness gap the pipeline is meant to measure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from pipelines.skin_tone.color import lab_to_linear, lab_to_srgb, linear_to_srgb

__all__ = ["SKIN_TYPES", "SkinType", "lab_to_srgb", "render_dermoscopy", "sample_skin_lab"]


@dataclass(frozen=True)
class SkinType:
    ita: tuple[float, float]  # degrees, drawn uniformly
    b_star: tuple[float, float]  # drawn uniformly; L* = 50 + b* tan(ITA)
    a_star: tuple[float, float]  # redness; does not enter ITA
    lesion_contrast: float  # multiplies pigment density and blotch strength


# Skin colour per Fitzpatrick type. ITA bands = the Kinyanjui thresholds (DATA.md §5: I > 55, II 41-55,
# III 28-41, IV 19-28, V 10-19, VI <= 10) shrunk by a 1.5° margin so that a measured ITA lands in the right
# band despite noise; open ends capped at 70 (I) and -30 (VI, the Chardon brown/dark edge).
# We draw b* and derive L* rather than the reverse: L* = 50 + b* tan(ITA) stays well-conditioned where the
# type VI band crosses ITA = 0, while b* = (L* - 50) / tan(ITA) blows up there. b* 8-22 and a* 8-16 are
# hand-chosen plausible skin values (not from a cited table); the resulting L* is about I 62-83, II 60-72,
# III 57-65, IV 55-60, V 53-56, VI 37-53, i.e. lighter to darker as the ITA scale of Chardon 1991 implies.
# lesion_contrast < 1 on dark skin: pigment on dark skin is less distinct (a design choice of the demo).
SKIN_TYPES: dict[int, SkinType] = {
    1: SkinType(ita=(56.5, 70.0), b_star=(8.0, 12.0), a_star=(8.0, 12.0), lesion_contrast=1.0),
    2: SkinType(ita=(42.5, 53.5), b_star=(11.0, 16.0), a_star=(9.0, 13.0), lesion_contrast=0.9),
    3: SkinType(ita=(29.5, 39.5), b_star=(13.0, 18.0), a_star=(10.0, 14.0), lesion_contrast=0.78),
    4: SkinType(ita=(20.5, 26.5), b_star=(14.0, 19.0), a_star=(10.0, 15.0), lesion_contrast=0.66),
    5: SkinType(ita=(11.5, 17.5), b_star=(14.0, 19.0), a_star=(11.0, 16.0), lesion_contrast=0.55),
    6: SkinType(ita=(-30.0, 8.5), b_star=(14.0, 22.0), a_star=(10.0, 15.0), lesion_contrast=0.45),
}

# Melanin absorbs more at short wavelengths: per-channel (R, G, B) optical density of one unit of pigment.
# Hand-tuned so that one unit turns light skin a mid brown.
MELANIN_ABSORPTION = np.array([0.55, 0.85, 1.25], dtype=np.float32)
# Blotch colours as multipliers of the local skin colour (relative, so they stay darker than the skin on
# every tone): dark brown and black = extra melanin; blue-grey = dermal melanin; red = vascular.
BLOTCH_DENSITY = {"dark_brown": 0.8, "black": 2.2}
BLOTCH_TINTS = {
    "blue_grey": np.array([0.30, 0.38, 0.52], dtype=np.float32),
    "red": np.array([0.85, 0.38, 0.40], dtype=np.float32),
}
REDNESS_AXIS = np.array([1.0, -0.5, -0.5], dtype=np.float32)  # haemoglobin: more red, less green/blue
HAIR_LINEAR_RGB = np.array([0.008, 0.005, 0.003], dtype=np.float32)
# Pixel sizes (hair strokes, edge widths) are given at this width and scale with the image.
REFERENCE_WIDTH = 256
VIGNETTE_BLACK = 0.0006  # linear light outside the dermoscope's field (sRGB ~ 2/255)


def sample_skin_lab(rng: np.random.Generator, fitzpatrick: int) -> np.ndarray:
    """Draw one skin colour (L*, a*, b*) for a Fitzpatrick type 1..6 from `SKIN_TYPES`."""
    if fitzpatrick not in SKIN_TYPES:
        raise ValueError(f"fitzpatrick: expected 1..6, got {fitzpatrick!r}")
    skin = SKIN_TYPES[fitzpatrick]
    ita = np.deg2rad(rng.uniform(*skin.ita))
    b_star = rng.uniform(*skin.b_star)
    a_star = rng.uniform(*skin.a_star)
    return np.array([50.0 + b_star * np.tan(ita), a_star, b_star])


def _smooth_noise(rng: np.random.Generator, width: int, height: int, cells: int) -> np.ndarray:
    """Zero-mean, roughly unit-variance noise varying over about `cells` cells across the width."""
    grid_w = cells + 3
    grid_h = max(2, round(cells * height / width)) + 3
    grid = rng.standard_normal((grid_h, grid_w), dtype=np.float32)
    # Render the grid larger than the frame and crop, so the bicubic border artefacts stay outside.
    step_x, step_y = width / cells, height / (grid_h - 3)
    big = Image.fromarray(grid).resize(
        (round(step_x * grid_w), round(step_y * grid_h)), Image.Resampling.BICUBIC
    )
    ox, oy = round(step_x * 1.5), round(step_y * 1.5)
    return np.asarray(big, dtype=np.float32)[oy : oy + height, ox : ox + width] * 1.6


@dataclass(frozen=True)
class _Frame:
    """Pixel-centre coordinates of the image, computed once per render."""

    xs: np.ndarray
    ys: np.ndarray

    @classmethod
    def of(cls, width: int, height: int) -> _Frame:
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        return cls(xs=xs, ys=ys)

    @property
    def height(self) -> int:
        return self.xs.shape[0]

    @property
    def width(self) -> int:
        return self.xs.shape[1]

    def polar(self, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
        dx, dy = self.xs - np.float32(cx), self.ys - np.float32(cy)
        return np.hypot(dx, dy), np.arctan2(dy, dx)


def _lesion_layers(rng: np.random.Generator, frame: _Frame, atypia: float) -> tuple[np.ndarray, np.ndarray]:
    """Coverage alpha (0..1) and pigment density of the lesion body."""
    width, height = frame.width, frame.height
    cx = width / 2 + rng.normal(0, 0.05 * height)
    cy = height / 2 + rng.normal(0, 0.05 * height)
    # Malignant lesions are larger (ABCD rule "D"); radius as a fraction of the frame height.
    radius = height * float(np.clip(0.12 + 0.15 * atypia + rng.normal(0, 0.025), 0.08, 0.34))
    dist, theta = frame.polar(cx, cy)

    # Shape: an oval (elongation e, axis phi) with a radial border noise of a few harmonics ("B").
    elongation = 0.04 + 0.30 * atypia * rng.uniform(0.3, 1.0)
    phi = rng.uniform(0, np.pi)
    angles = np.linspace(-np.pi, np.pi, 512, endpoint=False)
    harmonics = np.arange(3, 17)
    amplitudes = (0.01 + 0.16 * atypia) * rng.standard_normal(harmonics.size) / harmonics**0.9
    phases = rng.uniform(0, 2 * np.pi, harmonics.size)
    border = (amplitudes * np.cos(np.outer(angles, harmonics) + phases)).sum(axis=1)
    border_radius = (radius * (1 + elongation * np.cos(2 * (angles - phi))) * (1 + border)).astype(np.float32)
    index = ((theta + np.pi) * (512 / (2 * np.pi))).astype(np.int32) % 512
    edge = border_radius[index]
    softness = np.float32(rng.uniform(1.0, 3.0) * width / REFERENCE_WIDTH)
    alpha = np.clip((edge - dist) / softness + 0.5, 0.0, 1.0)

    # Pigment: darker centre, a fine network-like texture, and an off-centre gradient for asymmetry ("A").
    inner = np.clip(1 - dist / np.maximum(edge, 1.0), 0.0, 1.0)
    direction = rng.uniform(0, 2 * np.pi)
    skew = np.float32(0.9 * atypia * rng.uniform(0.3, 1.0))
    along = ((frame.xs - cx) * np.cos(direction) + (frame.ys - cy) * np.sin(direction)) / radius
    texture = 0.15 * _smooth_noise(rng, width, height, cells=20) + 0.1 * _smooth_noise(rng, width, height, 56)
    density = np.float32(rng.uniform(1.2, 2.0)) * (0.7 + 0.6 * inner) * (1 + texture) * (1 + skew * along)
    return alpha, np.clip(density, 0.2, None) * alpha


def _pigment(
    rng: np.random.Generator,
    frame: _Frame,
    linear: np.ndarray,
    alpha: np.ndarray,
    density: np.ndarray,
    atypia: float,
    contrast: float,
) -> np.ndarray:
    """Apply the lesion's melanin plus colour variegation ("C"): 0-5 blotches of dark brown, black,
    blue-grey or red inside the lesion."""
    count = int(min(5, rng.poisson(0.2 + 3.2 * atypia**1.5)))
    inside = np.flatnonzero(alpha.ravel() > 0.95)
    tints = []
    if inside.size:
        lesion_radius = np.sqrt(inside.size / np.pi)
        density = density.copy()
        for _ in range(count):
            by, bx = divmod(int(inside[rng.integers(inside.size)]), frame.width)
            sigma = lesion_radius * rng.uniform(0.12, 0.3)
            blob = np.exp(((frame.xs - bx) ** 2 + (frame.ys - by) ** 2) / np.float32(-2 * sigma**2)) * alpha
            kind = rng.choice(["dark_brown", "black", "blue_grey", "red"], p=[0.4, 0.25, 0.2, 0.15])
            if kind in BLOTCH_DENSITY:
                density += BLOTCH_DENSITY[kind] * blob
            else:
                tints.append((blob * np.float32(rng.uniform(0.6, 0.9)), BLOTCH_TINTS[kind]))
    out = linear * np.exp(np.float32(-contrast) * density[..., None] * MELANIN_ABSORPTION)
    for weight, tint in tints:
        # Relative tint, faded on dark skin like the pigment (contrast < 1).
        out = out * (1 + (tint - 1) * (np.float32(contrast) * weight)[..., None])
    return out


def _hair_mask(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """0-6 dark strands as quadratic Bezier curves crossing the field; coverage in 0..1."""
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    t = np.linspace(0, 1, 16)[:, None]
    for _ in range(int(rng.integers(0, 7))):
        p0, p1, p2 = rng.uniform([-0.1 * width, -0.1 * height], [1.1 * width, 1.1 * height], (3, 2))
        curve = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
        opacity = int(rng.integers(170, 240))
        stroke = max(1, round(int(rng.integers(1, 4)) * width / REFERENCE_WIDTH))
        draw.line([tuple(p) for p in curve], fill=opacity, width=stroke, joint="curve")
    return np.asarray(mask, dtype=np.float32) / 255.0


def _vignette(rng: np.random.Generator, frame: _Frame) -> np.ndarray:
    """Dermoscope field: 1 inside a circle, black outside, with a soft falloff at the rim.

    The radius is drawn relative to the half-diagonal; above 1 the circle clears the corners (no vignette),
    which happens for roughly a quarter of the images.
    """
    width, height = frame.width, frame.height
    radius = np.hypot(width, height) / 2 * rng.uniform(0.76, 1.08)
    cx = width / 2 + rng.normal(0, 0.02 * width)
    cy = height / 2 + rng.normal(0, 0.02 * height)
    inside = np.float32(radius) - frame.polar(cx, cy)[0]
    px = width / REFERENCE_WIDTH
    rim = np.clip(inside / (3.0 * px), 0.0, 1.0)  # the hard edge of the field stop, ~3 px
    falloff = 1 - 0.2 * np.clip(1 - inside / (10.0 * px), 0.0, 1.0)  # lens darkening just inside it
    return rim * falloff


def render_dermoscopy(
    rng: np.random.Generator, fitzpatrick: int, malignant: bool, size: tuple[int, int] = (256, 192)
) -> Image.Image:
    """Render one RGB dermoscopy-like image of `size` = (width, height). Deterministic given `rng`'s state."""
    width, height = size
    frame = _Frame.of(width, height)
    skin_linear = lab_to_linear(sample_skin_lab(rng, fitzpatrick)).astype(np.float32)
    # Mottling of the skin: luminance and a little redness (haemoglobin), both mean 1 so the median holds.
    tone = 1 + 0.035 * _smooth_noise(rng, width, height, cells=10)
    redness = 0.015 * _smooth_noise(rng, width, height, cells=16)
    linear = skin_linear * tone[..., None] * (1 + redness[..., None] * REDNESS_AXIS)

    atypia = float(np.clip(rng.normal(0.68 if malignant else 0.25, 0.17), 0.0, 1.0))
    alpha, density = _lesion_layers(rng, frame, atypia)
    linear = _pigment(rng, frame, linear, alpha, density, atypia, SKIN_TYPES[fitzpatrick].lesion_contrast)

    hair = _hair_mask(rng, width, height)[..., None]
    linear = linear * (1 - hair) + HAIR_LINEAR_RGB * np.float32(rng.uniform(0.6, 1.6)) * hair

    # Uneven illumination: a linear ramp of up to +-10 % in a random direction.
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (frame.xs / width - 0.5) * np.float32(2 * np.cos(angle)) + (frame.ys / height - 0.5) * np.float32(
        2 * np.sin(angle)
    )
    linear = linear * (1 + np.float32(rng.uniform(0, 0.1)) * ramp)[..., None]

    field = _vignette(rng, frame)[..., None]
    linear = linear * field + np.float32(VIGNETTE_BLACK) * (1 - field)

    srgb = linear_to_srgb(linear) * 255 + rng.standard_normal((height, width, 3), dtype=np.float32) * 1.5
    return Image.fromarray(np.clip(np.rint(srgb), 0, 255).astype(np.uint8))
