"""Skin-tone estimation from dermoscopic RGB images: ITA of the healthy skin, its categories (DATA.md §5)."""

from pipelines.skin_tone.categories import chardon_category, fitzpatrick_from_ita, fitzpatrick_group
from pipelines.skin_tone.color import lab_to_srgb, srgb_to_lab
from pipelines.skin_tone.ita import SkinToneMeasurement, healthy_skin_mask, ita_degrees, measure_skin_tone

__all__ = [
    "SkinToneMeasurement",
    "chardon_category",
    "fitzpatrick_from_ita",
    "fitzpatrick_group",
    "healthy_skin_mask",
    "ita_degrees",
    "lab_to_srgb",
    "measure_skin_tone",
    "srgb_to_lab",
]
