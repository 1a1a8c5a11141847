"""Free-text diagnoses (ISIC 2020 `diagnosis`, ISIC Archive `diagnosis_1..5`) -> normalised codes.

The 2020 values are listed in DATA.md §1.5; the archive's hierarchical terms in §4 (isic-metadata
`DiagnosisEnum`). Rules are ordered: the first keyword found in the lower-cased text wins, so
"melanoma in situ" is MEL and "lichenoid keratosis" is BKL before the AK rule can see "keratosis".
"""

from __future__ import annotations

RULES: tuple[tuple[str, str], ...] = (
    ("melanoma", "MEL"),
    ("basal cell carcinoma", "BCC"),
    ("squamous cell carcinoma", "SCC"),
    ("actinic keratosis", "AK"),
    ("seborrheic keratosis", "BKL"),
    ("lichenoid keratosis", "BKL"),
    ("lichen planus like keratosis", "BKL"),
    ("pigmented benign keratosis", "BKL"),
    ("lentigo", "BKL"),  # 2020: "lentigo NOS", "solar lentigo" (ISIC 2019 files lentigines under BKL)
    ("dermatofibroma", "DF"),
    ("vascular", "VASC"),
    ("hemangioma", "VASC"),
    ("angioma", "VASC"),
    ("angiokeratoma", "VASC"),
    ("pyogenic granuloma", "VASC"),
    ("nevus", "NV"),
    ("nevi", "NV"),
)


def diagnosis_from_text(text: str | None) -> str:
    """Normalised code for a free-text diagnosis; UNK when empty or 'unknown', OTHER when not recognised."""
    if text is None or text.strip() == "" or text.strip().lower() == "unknown":
        return "UNK"
    lowered = text.strip().lower()
    if lowered == "benign":  # an archive image whose hierarchy stops at diagnosis_1 = "Benign"
        return "BEN"
    for keyword, code in RULES:
        if keyword in lowered:
            return code
    return "OTHER"
