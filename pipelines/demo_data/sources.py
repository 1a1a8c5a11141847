"""The sources of the demo images and their vocabularies, weighted like the real ISIC downloads (DATA.md).

A *source* is where an image was first released (the 2016/2017-era archive, HAM10000, BCN20000, the 2020
total-body cohort, an FST-labelled archive pull, DDI); `plan` re-releases its images across years.
"""

from __future__ import annotations

# source: (share of the unique ISIC images, minimum count, ISIC number range it was released in).
# Ranges are the real ones (DATA.md §1.1-1.4); 2020 and archive ids are spread over the whole range.
SOURCES: dict[str, tuple[float, int, tuple[int, int]]] = {
    "era2016": (0.15, 9, (0, 11_403)),  # ISIC 2016 train + test, ISIC_0000000-ISIC_0011402
    "era2017": (0.08, 6, (12_086, 16_073)),  # new in ISIC 2017
    "ham": (0.12, 8, (24_306, 34_321)),  # ISIC 2018 Task 3 training = HAM10000
    "ham_test": (0.03, 2, (34_524, 36_065)),  # ISIC 2018 Task 3 test
    "bcn": (0.12, 6, (53_469, 73_255)),  # BCN20000, new in ISIC 2019
    "isic2020": (0.32, 16, (0, 10_000_000)),
    "archive": (0.18, 8, (0, 10_000_000)),
}
# Image files per unique image: 2016 images reappear in 2017 (~80 %) and 2019 (~95 %), 2017 and HAM training
# images in 2019 (DATA.md §1.1-1.3 overlaps). Used to turn `n_images` (files) into unique images.
FILE_COPIES = {"era2016": 2.75, "era2017": 1.97, "ham": 2.0}
SIZE_OF = {
    "era2016": "isic2016",
    "era2017": "isic2017",
    "ham": "isic2018",
    "ham_test": "isic2018",
    "bcn": "isic2019",
    "isic2020": "isic2020",
    "archive": "isic_archive",
}

# Non-melanoma labels per source, in the source's own words, weighted like the real class counts
# (2017: DATA.md §1.2; HAM with 2019's AK/SCC split of akiec: §1.3; BCN: §1.4 table; 2020: §1.5).
BENIGN: dict[str, dict[str, float]] = {
    "era2016": {"NV": 0.8, "BKL": 0.2},
    "era2017": {"NV": 0.75, "BKL": 0.25},
    "ham": {"NV": 0.75, "BKL": 0.12, "BCC": 0.06, "AK": 0.015, "SCC": 0.022, "DF": 0.013, "VASC": 0.016},
    "bcn": {"NV": 0.44, "BCC": 0.29, "BKL": 0.12, "AK": 0.08, "SCC": 0.045, "DF": 0.013, "VASC": 0.012},
    "isic2020": {
        "unknown": 0.83,
        "nevus": 0.16,
        "seborrheic keratosis": 0.004,
        "lentigo NOS": 0.0014,
        "lichenoid keratosis": 0.0011,
        "solar lentigo": 0.0002,
        "cafe-au-lait macule": 0.0001,
        "atypical melanocytic proliferation": 0.0001,
    },
    # archive diagnosis_3 ("" = only diagnosis_1 "Benign" given)
    "archive": {
        "Nevus": 0.5,
        "Basal cell carcinoma": 0.14,
        "Seborrheic keratosis": 0.12,
        "Solar or actinic keratosis": 0.06,
        "Squamous cell carcinoma, Invasive": 0.05,
        "Dermatofibroma": 0.04,
        "Solar lentigo": 0.04,
        "": 0.05,
    },
}
BENIGN["ham_test"] = BENIGN["ham"]
MELANOMA = {"isic2020": ("melanoma",), "archive": ("Melanoma Invasive", "Melanoma in situ")}
WORDED = ("isic2020", "archive")  # sources whose own diagnosis words are printed (`DemoImage.detail`)
# Source words -> schema diagnosis codes (pipelines/lesions/schema.py DIAGNOSES); codes map to themselves.
CODE = {
    "unknown": "UNK",
    "nevus": "NV",
    "melanoma": "MEL",
    "seborrheic keratosis": "BKL",
    "lentigo NOS": "BKL",
    "lichenoid keratosis": "BKL",
    "solar lentigo": "BKL",
    "cafe-au-lait macule": "OTHER",
    "atypical melanocytic proliferation": "OTHER",
    "Nevus": "NV",
    "Basal cell carcinoma": "BCC",
    "Seborrheic keratosis": "BKL",
    "Solar or actinic keratosis": "AK",
    "Squamous cell carcinoma, Invasive": "SCC",
    "Dermatofibroma": "DF",
    "Solar lentigo": "BKL",
    "": "BEN",
    "Melanoma Invasive": "MEL",
    "Melanoma in situ": "MEL",
    "Melanoma, NOS": "MEL",
}
# How a 2020 image is labelled when the archive re-exports it (2020 "unknown" = only diagnosis_1 Benign).
ARCHIVE_TERM_OF_2020 = {
    "unknown": "",
    "nevus": "Nevus",
    "melanoma": "Melanoma, NOS",
    "seborrheic keratosis": "Seborrheic keratosis",
    "solar lentigo": "Solar lentigo",
}

# ISIC 2019 anatom_site_general frequencies (DATA.md §1.4); missing 10 % there, 1.6 % in 2020.
SITES = {
    "anterior torso": 6915,
    "lower extremity": 4990,
    "head/neck": 4587,
    "upper extremity": 2910,
    "posterior torso": 2787,
    "palms/soles": 398,
    "oral/genital": 59,
    "lateral torso": 54,
}
SITE_MISSING = {"isic2020": 0.016, "archive": 0.05}
HAM_LOCALIZATION = {
    "anterior torso": ("chest", "abdomen", "trunk"),
    "posterior torso": ("back",),
    "lateral torso": ("trunk",),
    "head/neck": ("face", "scalp", "neck", "ear"),
    "upper extremity": ("upper extremity", "hand"),
    "lower extremity": ("lower extremity", "foot"),
    "palms/soles": ("acral",),
    "oral/genital": ("genital",),
    "": ("unknown",),
}

DDI_MELANOMA = ("melanoma-in-situ", "melanoma", "nodular-melanoma-(nm)", "melanoma-acral-lentiginous")
DDI_OTHER_MALIGNANT = ("basal-cell-carcinoma", "squamous-cell-carcinoma-in-situ", "mycosis-fungoides")
DDI_BENIGN = (
    "melanocytic-nevi",
    "seborrheic-keratosis",
    "verruca-vulgaris",
    "epidermal-cyst",
    "dermatofibroma",
    "actinic-keratosis",
    "pyogenic-granuloma",
)
DDI_CODE = {
    "melanocytic-nevi": "NV",
    "seborrheic-keratosis": "BKL",
    "dermatofibroma": "DF",
    "actinic-keratosis": "AK",
    "basal-cell-carcinoma": "BCC",
    "squamous-cell-carcinoma-in-situ": "SCC",
    "pyogenic-granuloma": "VASC",
    **dict.fromkeys(DDI_MELANOMA, "MEL"),
}
