"""Parameters of the embedded demo dataset (synthetic images in the real ISIC on-disk layouts)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Fitzpatrick I..VI weights of the challenge years: skewed light like ISIC, where types V-VI are a few
# percent at most (DATA.md §5: ISIC 2018 ITAs have no "dark" and 5 "brown" images out of 10,015).
ISIC_FITZPATRICK_WEIGHTS = (0.22, 0.38, 0.22, 0.11, 0.05, 0.02)
# FST-labelled archive pulls (`fitzpatrick_skin_type:*`, DATA.md §4) are where darker skin comes from.
ARCHIVE_FITZPATRICK_WEIGHTS = (0.10, 0.18, 0.20, 0.20, 0.18, 0.14)

# (width, height) per layout. Small on purpose so the demo renders in seconds on one CPU core; the real
# images are 600x450 (2018) to 1024x1024 (BCN in 2019) and larger.
DEFAULT_IMAGE_SIZES: dict[str, tuple[int, int]] = {
    "isic2016": (240, 180),
    "isic2017": (240, 180),
    "isic2018": (200, 150),
    "isic2019": (224, 224),
    "isic2020": (256, 170),
    "isic_archive": (224, 168),
    "ddi": (200, 200),
}


def _check_weights(weights: tuple[float, ...]) -> tuple[float, ...]:
    if len(weights) != 6 or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"Fitzpatrick weights: expected 6 non-negative numbers for I..VI, got {weights}")
    return weights


class DemoDataParams(BaseModel):
    """What `generate_demo_data` writes. The same seed and params always give the same bytes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = 0
    # Approximate number of ISIC image *files* (all challenge years + the archive export, counting an image
    # that is re-released in a later year once per copy). DDI images come on top (`n_ddi`).
    n_images: int = Field(300, ge=60, le=50_000)  # above, the 2016 id range (11,403 ids) runs out
    # When set, overrides `n_images`: as many images as about `n_patients` patients have (all sources).
    n_patients: int | None = Field(None, ge=10)
    n_ddi: int = Field(48, ge=6, le=20_000)
    images_per_patient: tuple[int, int] = (1, 3)  # inclusive range, challenge years 2016-2019 + archive
    # ISIC 2020 comes from total-body photography follow-up: 33,126 images of 2,056 patients (DATA.md §1.5).
    images_per_patient_2020: tuple[int, int] = (2, 6)
    # Fraction of lesions that are melanoma in every source. Real rates differ (2016 train 19 %, 2019 18 %,
    # 2020 1.8 %); one rate keeps enough melanomas in every year of a small demo.
    melanoma_rate: float = Field(0.15, gt=0.0, lt=0.5)
    # Melanomas on Fitzpatrick V-VI patients are kept with this probability, the others trade labels with benign
    # lesions on lighter skin (source_images.py): ISIC's very few malignant lesions on dark skin. 1 = no skew.
    dark_skin_melanoma_factor: float = Field(1.0, ge=0.0, le=1.0)
    fitzpatrick_weights: tuple[float, float, float, float, float, float] = ISIC_FITZPATRICK_WEIGHTS
    archive_fitzpatrick_weights: tuple[float, float, float, float, float, float] = ARCHIVE_FITZPATRICK_WEIGHTS
    ddi_malignant_rate: float = Field(0.26, ge=0.0, le=1.0)  # DDI: 170 of 653 rows malignant (DATA.md §3.1)
    # Share of DDI's malignant rows that are melanomas (the rest BCC, SCC in situ, mycosis fungoides). The demo
    # renderer draws one malignant appearance, a melanoma's: the other malignant rows look benign, so a melanoma
    # classifier cannot find them and they cap its DDI sensitivity near this share.
    ddi_melanoma_share: float = Field(0.5, ge=0.0, le=1.0)
    jpeg_quality: int = Field(90, ge=50, le=100)
    image_sizes: dict[str, tuple[int, int]] = Field(default_factory=lambda: dict(DEFAULT_IMAGE_SIZES))

    @field_validator("fitzpatrick_weights", "archive_fitzpatrick_weights")
    @classmethod
    def _weights(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        return _check_weights(value)

    @field_validator("images_per_patient", "images_per_patient_2020")
    @classmethod
    def _range(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not 1 <= value[0] <= value[1]:
            raise ValueError(f"images per patient: expected 1 <= low <= high, got {value}")
        return value

    @model_validator(mode="after")
    def _sizes(self) -> DemoDataParams:
        missing = sorted(set(DEFAULT_IMAGE_SIZES) - set(self.image_sizes))
        if missing:
            raise ValueError(
                f"image_sizes: missing layouts {missing}; expected keys {sorted(DEFAULT_IMAGE_SIZES)}"
            )
        for layout, (width, height) in self.image_sizes.items():
            if not (16 <= width <= 4096 and 16 <= height <= 4096):
                raise ValueError(f"image_sizes[{layout!r}]: expected 16..4096 px, got {(width, height)}")
        return self
