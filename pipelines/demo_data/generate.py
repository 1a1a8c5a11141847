"""The embedded demo dataset: synthetic dermoscopy images in the real ISIC on-disk layouts (DATA.md).

Three steps. *Plan* (`plan_demo_data`): patients with a Fitzpatrick type, sex and age; lesions with a
diagnosis; images per source (the 2016/2017-era archive, HAM10000, BCN20000, the 2020 total-body cohort, an
FST-labelled archive pull, DDI), re-released across years the way ISIC did, with the known quirks of the real
downloads planted (`list_quirks`). *Render*: every distinct image once, with a child RNG of (seed, image key),
so the bytes do not depend on the order of writing. *Write*: `layouts` writes each year's files into a
staging folder that is swapped into place at the end. Same params -> same bytes.
"""

from __future__ import annotations

import io
import json
import shutil
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from pipelines.demo_data import layouts
from pipelines.demo_data.layouts import DemoImage, write_bytes_atomic, write_csv
from pipelines.demo_data.params import DemoDataParams
from pipelines.demo_data.render import render_dermoscopy

# --- sources -------------------------------------------------------------------------------------------

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


# --- plan ----------------------------------------------------------------------------------------------


@dataclass
class DemoPlan:
    """Every image of every layout, plus the ids that carry a planted quirk."""

    isic2016_train: list[DemoImage]
    isic2016_test: list[DemoImage]
    isic2017: dict[str, list[DemoImage]]  # Training / Validation / Test_v2
    isic2018_train: list[DemoImage]
    isic2018_test: list[DemoImage]
    isic2019: list[DemoImage]
    isic2020: list[DemoImage]
    archive: list[DemoImage]
    ddi: list[DemoImage]
    conflicts: set[str]  # melanomas printed `benign` in the 2016 training GT (like ISIC_0000077)
    downsampled: set[str]  # ids named `<id>_downsampled` in 2019
    superpixels: set[str]  # 2017 ids with a `_superpixels.png` next to the JPEG
    duplicates: list[tuple[str, str]]  # 2020 near-duplicate pairs
    corrupt: set[str]  # a truncated JPEG
    missing: set[str]  # listed in a ground truth, no file
    reexported: set[str]  # 2020 images that the archive export carries too


def _subset(
    rng: np.random.Generator,
    items: list[DemoImage],
    fraction: float = 0.0,
    *,
    count: int | None = None,
    must: set[str] = frozenset(),
    exclude: set[str] = frozenset(),
) -> list[DemoImage]:
    """`count` (else about `fraction`, at least one) of `items`, always those in `must`, never those in
    `exclude`; in their original order."""
    forced = [i for i, im in enumerate(items) if im.isic_id in must]
    free = [i for i, im in enumerate(items) if im.isic_id not in must and im.isic_id not in exclude]
    want = (max(1, round(fraction * len(items))) if count is None else count) - len(forced)
    chosen = set(forced) | set(rng.choice(free, size=min(max(want, 0), len(free)), replace=False).tolist())
    return [im for i, im in enumerate(items) if i in chosen]


def _without(items: list[DemoImage], drop: list[DemoImage]) -> list[DemoImage]:
    dropped = {im.isic_id for im in drop}
    return [im for im in items if im.isic_id not in dropped]


def _quota(rng: np.random.Generator, weights: tuple[float, ...], n: int) -> np.ndarray:
    """Fitzpatrick types 1..6 for n patients in exact proportion (largest remainder), shuffled: a small demo
    keeps the intended skew instead of a lucky draw."""
    share = np.asarray(weights, dtype=float) / sum(weights) * n
    counts = np.floor(share).astype(int)
    for k in np.argsort(-(share - counts), kind="stable")[: n - counts.sum()]:
        counts[k] += 1
    return rng.permutation(np.repeat(np.arange(1, 7), counts))


class _Planner:
    def __init__(self, params: DemoDataParams):
        self.params = params
        self.rng = np.random.default_rng([params.seed, 0])  # plan stream; rendering uses per-image streams
        self.taken: dict[str, set[int]] = defaultdict(set)

    def numbers(self, namespace: str, n: int, low: int, high: int) -> list[int]:
        """n new distinct 7-digit numbers in [low, high) for ids like ISIC_/HAM_/IP_ (sorted)."""
        taken = self.taken[namespace]
        if high - low - sum(low <= t < high for t in taken) < n:
            raise ValueError(f"{namespace} ids in [{low}, {high}): cannot draw {n} more; lower n_images")
        new: set[int] = set()
        while len(new) < n:
            x = int(self.rng.integers(low, high))
            if x not in taken:
                new.add(x)
        taken |= new
        return sorted(new)

    def ids(self, prefix: str, n: int) -> list[str]:
        return [f"{prefix}_{x:07d}" for x in self.numbers(prefix, n, 0, 10_000_000)]

    def labels(self, source: str, n: int) -> list[str]:
        """One label per lesion: exactly round(rate x n) melanomas, the rest by the source's weights."""
        n_mel = max(1 if n >= 3 else 0, round(self.params.melanoma_rate * n))
        melanoma = set(self.rng.choice(n, size=n_mel, replace=False).tolist())
        names = list(BENIGN[source])
        weights = np.array([BENIGN[source][k] for k in names])
        benign = self.rng.choice(len(names), size=n, p=weights / weights.sum())
        mel_names = MELANOMA.get(source, ("MEL",))
        return [str(self.rng.choice(mel_names)) if i in melanoma else names[benign[i]] for i in range(n)]

    def images(self, source: str, n: int) -> list[DemoImage]:
        """n images of one source: patients (type, sex, age) -> lesions (site, label) -> images."""
        rng, params = self.rng, self.params
        ham = source in ("ham", "ham_test")
        low, high = params.images_per_patient_2020 if source == "isic2020" else params.images_per_patient
        sizes: list[int] = []
        while sum(sizes) < n:
            # HAM10000 has no patients, only lesions: 10,015 images of 7,470 lesions (DATA.md §1.3).
            k = 1 + int(rng.binomial(2, 0.2)) if ham else int(rng.integers(low, high + 1))
            sizes.append(min(k, n - sum(sizes)))
        weights = params.archive_fitzpatrick_weights if source == "archive" else params.fitzpatrick_weights
        types = _quota(rng, weights, len(sizes))
        sexes = rng.choice(["male", "female", ""], size=len(sizes), p=[0.52, 0.46, 0.02])
        ages = 5 * np.rint(np.clip(rng.normal(52, 15, len(sizes)), 10, 85) / 5).astype(int)
        patient_ids = self.ids("IP", len(sizes)) if source in ("isic2020", "archive") else [""] * len(sizes)
        n_lesions = len(sizes) if ham else n
        labels = self.labels(source, n_lesions)
        if ham and not {"AK", "SCC"} & set(labels):  # plant the 2018 akiec -> 2019 AK/SCC split
            labels[next(i for i, label in enumerate(labels) if label != "MEL")] = "SCC"
        site_names = list(SITES)
        p_site = np.array(list(SITES.values()), dtype=float)
        sites = rng.choice(site_names, size=n_lesions, p=p_site / p_site.sum()).tolist()
        missing_site = rng.random(n_lesions) < SITE_MISSING.get(source, 0.10)
        prefix = {"ham": "HAM", "ham_test": "HAM", "bcn": "BCN", "archive": "IL"}.get(source)
        lesion_ids = self.ids(prefix, n_lesions) if prefix else [""] * n_lesions
        numbers = self.numbers("ISIC", n, *SOURCES[source][2])
        out, i = [], 0
        for p, k in enumerate(sizes):
            for _ in range(k):
                lesion = p if ham else i
                site = "" if missing_site[lesion] else sites[lesion]
                label = labels[lesion]
                out.append(
                    DemoImage(
                        isic_id=f"ISIC_{numbers[i]:07d}",
                        source=source,
                        fitzpatrick=int(types[p]),
                        diagnosis=CODE.get(label, label),
                        detail=label if source in WORDED else "",
                        sex=str(sexes[p]),
                        age=None if rng.random() < 0.03 else int(ages[p]),
                        site=site,
                        patient_id=patient_ids[p],
                        lesion_id=lesion_ids[lesion],
                        dx_type=self.dx_type(label) if ham else "",
                        localization=str(rng.choice(HAM_LOCALIZATION[site])) if ham else "",
                        size=tuple(params.image_sizes[SIZE_OF[source]]),
                        render_key=numbers[i],
                    )
                )
                i += 1
        return out

    def dx_type(self, code: str) -> str:
        # HAM10000: every melanoma is histopathology-confirmed; nevi mostly follow-up (DATA.md §1.3 counts).
        if code == "MEL":
            return "histo"
        if code == "NV":
            return str(
                self.rng.choice(["follow_up", "histo", "consensus", "confocal"], p=[0.55, 0.35, 0.08, 0.02])
            )
        return str(self.rng.choice(["histo", "consensus"], p=[0.75, 0.25]))

    def ddi(self) -> list[DemoImage]:
        """Balanced skin tones 12/34/56 (DATA.md §3.1), the same malignant count in each."""
        rng, params = self.rng, self.params
        per_tone = max(2, params.n_ddi // 3)
        n_malignant = round(params.ddi_malignant_rate * per_tone)
        n_melanoma = (n_malignant + 1) // 2
        planned = []
        for types in ((1, 2), (3, 4), (5, 6)):
            for j in range(per_tone):
                pool = (
                    DDI_MELANOMA if j < n_melanoma else DDI_OTHER_MALIGNANT if j < n_malignant else DDI_BENIGN
                )
                planned.append((int(rng.choice(types)), str(rng.choice(pool))))
        size = tuple(params.image_sizes["ddi"])
        return [
            DemoImage(
                isic_id="",
                source="ddi",
                fitzpatrick=fst,
                diagnosis=DDI_CODE.get(disease, "OTHER"),
                detail=disease,
                size=size,
                render_key=ddi_id,
                ddi_id=ddi_id,
            )
            for ddi_id, (fst, disease) in enumerate((planned[i] for i in rng.permutation(len(planned))), 1)
        ]


def unique_image_target(params: DemoDataParams) -> float:
    """Unique ISIC images for `n_images` files (or for `n_patients` patients)."""
    if params.n_patients is not None:
        mean = {s: float(np.mean(params.images_per_patient)) for s in SOURCES}
        mean["isic2020"] = float(np.mean(params.images_per_patient_2020))
        return params.n_patients / sum(SOURCES[s][0] / mean[s] for s in SOURCES)
    return params.n_images / sum(share * FILE_COPIES.get(s, 1.0) for s, (share, _, _) in SOURCES.items())


def plan_demo_data(params: DemoDataParams) -> DemoPlan:
    planner = _Planner(params)
    rng, target = planner.rng, unique_image_target(params)
    src = {
        s: planner.images(s, max(minimum, round(share * target)))
        for s, (share, minimum, _) in SOURCES.items()
    }

    # 2016: one melanoma becomes the label conflict (benign in 2016, melanoma in 2017 and 2019, DATA.md §1.1).
    era16 = src["era2016"]
    conflict = next(im.isic_id for im in era16 if im.melanoma)
    test16 = _subset(rng, era16, 0.3, exclude={conflict})
    train16 = _without(era16, test16)

    # 2017 re-releases most 2016 images (746/900 train ids; 305/379 test ids in 2017 train/val).
    era17 = src["era2017"]
    new_test = _subset(rng, era17, 0.25)
    new_val = _subset(rng, _without(era17, new_test), 0.2)
    new_train = _without(era17, new_test + new_val)
    test16_in_2017 = _subset(rng, test16, 0.8)
    test16_to_val = _subset(rng, test16_in_2017, 0.25)
    isic2017 = {
        "Training": _subset(rng, train16, 0.8, must={conflict})
        + new_train
        + _without(test16_in_2017, test16_to_val),
        "Validation": test16_to_val + new_val,
        "Test_v2": new_test,
    }

    # 2019 = nearly all 2016/2017 images (half of the 2017 ones as MSK4_ lesions) + HAM10000 + BCN20000.
    msk4 = _subset(rng, era17, 0.5)
    msk4_ids = dict(zip([im.isic_id for im in msk4], planner.ids("MSK4", len(msk4)), strict=True))
    era17_2019 = [
        replace(im, lesion_id=msk4_ids.get(im.isic_id, ""))
        for im in new_train + new_val + _subset(rng, new_test, 0.97)
    ]
    era_2019 = _subset(rng, train16, 0.95, must={conflict}) + _subset(rng, test16, 0.93) + era17_2019
    downsampled = {im.isic_id for im in _subset(rng, era_2019, 0.4, must={conflict})}
    downsampled |= {im.isic_id for im in era17_2019 if im.lesion_id}  # the MSK4_ names are downsampled too
    bcn = src["bcn"]
    corrupt = next(im.isic_id for im in reversed(bcn) if not im.melanoma)

    # 2020: near-duplicate pairs (same patient, same label), one row without a file, a few archive re-exports.
    isic2020 = src["isic2020"]
    n_pairs = max(2, round(0.013 * len(isic2020)))  # 425 pairs in 33,126 images (DATA.md §1.5)
    originals = _subset(rng, isic2020, count=n_pairs)
    twins = [
        replace(im, isic_id=new_id, variant=1)
        for im, new_id in zip(
            originals,
            [f"ISIC_{x:07d}" for x in planner.numbers("ISIC", len(originals), 0, 10_000_000)],
            strict=True,
        )
    ]
    used = {im.isic_id for im in originals}
    missing = next(im.isic_id for im in isic2020 if im.isic_id not in used and not im.melanoma)
    reexported = _subset(
        rng, [im for im in isic2020 if im.detail in ARCHIVE_TERM_OF_2020], count=3, exclude=used | {missing}
    )
    archive_lesions = planner.ids("IL", len(reexported))
    archive = src["archive"] + [
        replace(im, detail=ARCHIVE_TERM_OF_2020[im.detail], lesion_id=lesion)
        for im, lesion in zip(reexported, archive_lesions, strict=True)
    ]

    return DemoPlan(
        isic2016_train=train16,
        isic2016_test=test16,
        isic2017=isic2017,
        isic2018_train=src["ham"],
        isic2018_test=src["ham_test"],
        isic2019=era_2019 + src["ham"] + bcn,
        isic2020=isic2020 + twins,
        archive=archive,
        ddi=planner.ddi(),
        conflicts={conflict},
        downsampled=downsampled,
        superpixels={im.isic_id for split in isic2017.values() for im in _subset(rng, split, 0.2)},
        duplicates=[tuple(sorted((a.isic_id, b.isic_id))) for a, b in zip(originals, twins, strict=True)],
        corrupt={corrupt},
        missing={missing},
        reexported={im.isic_id for im in reexported},
    )


# --- quirks --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quirk:
    """A planted irregularity of the real downloads: what, which ISIC ids, which files (relative paths)."""

    kind: str
    ids: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    note: str = ""


def _ids(images: list[DemoImage]) -> set[str]:
    return {im.isic_id for im in images}


def list_quirks(plan: DemoPlan) -> list[Quirk]:
    ids16 = _ids(plan.isic2016_train) | _ids(plan.isic2016_test)
    ids17 = set().union(*(_ids(v) for v in plan.isic2017.values()))
    ids19 = _ids(plan.isic2019)
    akiec = sorted(im.isic_id for im in plan.isic2018_train if im.diagnosis in ("AK", "SCC"))
    [conflict] = plan.conflicts
    [corrupt] = plan.corrupt
    [missing] = plan.missing
    corrupt_name = layouts.isic2019_name(
        next(im for im in plan.isic2019 if im.isic_id == corrupt), plan.downsampled
    )
    crlf = (
        "isic2016/ISBI2016_ISIC_Part3_Training_GroundTruth.csv",
        "isic2016/ISBI2016_ISIC_Part3_Test_GroundTruth.csv",
        *(f"isic2017/ISIC-2017_{s}_Part3_GroundTruth.csv" for s in layouts.ISIC2017_SPLITS),
        *(f"isic2017/ISIC-2017_{s}_Data/ISIC-2017_{s}_Data_metadata.csv" for s in layouts.ISIC2017_SPLITS),
        "isic2018/ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv",
        "isic2019/ISIC_2019_Training_GroundTruth.csv",
        "isic2019/ISIC_2019_Training_Metadata.csv",
        "isic2020/ISIC_2020_Training_GroundTruth.csv",
        "isic2020/ISIC_2020_Training_Duplicates.csv",
    )
    quirks = [
        Quirk(
            "same_image_2016_2017",
            tuple(sorted(ids16 & ids17)),
            note="same bytes; 2016 benign = 2017 NV or SK",
        ),
        Quirk("same_image_2016_2019", tuple(sorted(ids16 & ids19)), note="same bytes, some `_downsampled`"),
        Quirk(
            "same_image_2017_2019",
            tuple(sorted((ids17 - ids16) & ids19)),
            note="same bytes; MSK4_ or no lesion_id",
        ),
        Quirk(
            "same_image_2018_2019",
            tuple(sorted(_ids(plan.isic2018_train))),
            note="same bytes; HAM_ lesion_id",
        ),
        Quirk(
            "downsampled_name",
            tuple(sorted(plan.downsampled)),
            note="2019 CSVs and file name end `_downsampled`",
        ),
        Quirk("akiec_relabel", tuple(akiec), note="AKIEC in 2018 / akiec in HAM10000, AK or SCC in 2019"),
        Quirk(
            "label_conflict",
            (conflict,),
            (
                "isic2016/ISBI2016_ISIC_Part3_Training_GroundTruth.csv",
                "isic2019/ISIC_2019_Training_GroundTruth.csv",
            ),
            "benign in 2016 train, melanoma 1.0 in 2017 train, MEL in 2019 (like ISIC_0000077); truth: MEL",
        ),
        *(
            Quirk(
                "isic2020_duplicate_pair",
                pair,
                ("isic2020/ISIC_2020_Training_Duplicates.csv",),
                "same patient and label, near-identical image (cropped 1 %, 3 % brighter)",
            )
            for pair in plan.duplicates
        ),
        Quirk(
            "corrupt_image",
            (corrupt,),
            (f"isic2019/ISIC_2019_Training_Input/{corrupt_name}.jpg",),
            "truncated JPEG (first half of the bytes), listed in the 2019 ground truth",
        ),
        Quirk(
            "missing_image",
            (missing,),
            ("isic2020/ISIC_2020_Training_GroundTruth.csv",),
            f"row present, isic2020/train/{missing}.jpg never written",
        ),
        Quirk(
            "archive_reexport",
            tuple(sorted(plan.reexported)),
            ("isic_archive/metadata.csv",),
            "2020 images also in the archive export (same id and bytes, fitzpatrick_skin_type given)",
        ),
        Quirk("crlf_line_endings", files=crlf),
        Quirk("no_trailing_newline", files=(crlf[0],)),
        Quirk("no_header", files=crlf[:2], note="2016 ground truths have no header row"),
        Quirk(
            "lf_line_endings",
            files=(
                "isic2018/HAM10000_metadata.csv",
                "isic2018/ISIC2018_Task3_Test_GroundTruth/ISIC2018_Task3_Test_GroundTruth.csv",
                "isic_archive/metadata.csv",
                "ddi/ddi_metadata.csv",
            ),
        ),
        Quirk(
            "superpixels_png",
            tuple(sorted(plan.superpixels)),
            note="`<id>_superpixels.png` next to 2017 JPEGs",
        ),
        Quirk(
            "non_image_files",
            files=tuple(
                f"isic2018/ISIC2018_Task3_{s}_{k}/{f}"
                for s in ("Training", "Test")
                for k in ("Input", "GroundTruth")
                for f in ("ATTRIBUTION.txt", "LICENSE.txt")
            ),
        ),
        Quirk(
            "quoted_field",
            files=("isic_archive/metadata.csv",),
            note="attribution and `Squamous cell carcinoma, Invasive` contain commas (quoted)",
        ),
        Quirk(
            "unnamed_index_column", files=("ddi/ddi_metadata.csv",), note="header starts with an empty name"
        ),
    ]
    return quirks


# --- render and write ----------------------------------------------------------------------------------

# What the generator owns under out_dir: replaced wholesale on every run, nothing else is touched.
OUTPUTS = (
    "isic2016",
    "isic2017",
    "isic2018",
    "isic2019",
    "isic2020",
    "isic_archive",
    "ddi",
    "demo_truth.csv",
    "demo_summary.json",
)
STAGING = ".demo_data_staging"
TRUTH_HEADER = ("image_path", "isic_id", "fitzpatrick", "malignant", "diagnosis")


@dataclass
class DemoSummary:
    """What was written: rows per CSV and images per folder (`files`), and every planted quirk."""

    out_dir: Path
    seed: int
    files: dict[str, int]
    n_image_files: int  # rows of demo_truth.csv: every image file written (the corrupt one included)
    n_unique_images: int  # distinct rendered images (re-released copies counted once)
    quirks: list[Quirk] = field(default_factory=list)
    seconds: float = 0.0

    def quirks_of(self, kind: str) -> list[Quirk]:
        return [q for q in self.quirks if q.kind == kind]

    def to_dict(self) -> dict:
        """JSON-ready; without the timing and the absolute path, so the file written is reproducible."""
        return {
            "seed": self.seed,
            "files": self.files,
            "n_image_files": self.n_image_files,
            "n_unique_images": self.n_unique_images,
            "quirks": [asdict(q) for q in self.quirks],
        }


class RenderingSink:
    """Renders each distinct image once; later copies of it (re-releases) get the same bytes."""

    def __init__(self, root: Path, params: DemoDataParams, corrupt: set[str], missing: set[str]):
        self.root, self.params, self.corrupt, self.missing = root, params, corrupt, missing
        self.first_copy: dict[tuple[int, int, int, str], Path] = {}
        self.unique: set[tuple[int, int, int]] = set()
        self.truth: list[tuple[str, str, int, int, str]] = []
        self.per_folder: Counter[str] = Counter()

    def put(self, image: DemoImage, rel_path: str) -> None:
        if image.isic_id in self.missing:  # quirk: the CSV row stays, the file never existed
            return
        target = self.root / rel_path
        fmt = "PNG" if rel_path.endswith(".png") else "JPEG"
        tag = 2 if image.source == "ddi" else 1  # DDI ids and ISIC numbers are separate key spaces
        key = (tag, image.render_key, image.variant, fmt)
        if image.isic_id in self.corrupt:  # quirk: header intact, scan data cut -> open() works, load() fails
            data = self._encode(image, tag, fmt)
            write_bytes_atomic(target, data[: len(data) // 2])
        elif key in self.first_copy:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.first_copy[key], target)
        else:
            write_bytes_atomic(target, self._encode(image, tag, fmt))
            self.first_copy[key] = target
        self.unique.add(key[:3])
        self.truth.append((rel_path, image.isic_id, image.fitzpatrick, int(image.melanoma), image.diagnosis))
        self.per_folder[rel_path.rsplit("/", 1)[0]] += 1

    def _encode(self, image: DemoImage, tag: int, fmt: str) -> bytes:
        # A child RNG per image from (seed, key space, key): bytes do not depend on the order of writing.
        rng = np.random.default_rng([self.params.seed, tag, image.render_key])
        picture = render_dermoscopy(rng, image.fitzpatrick, image.melanoma, image.size)
        if image.variant:
            picture = near_duplicate(picture)
        buffer = io.BytesIO()
        if fmt == "PNG":
            picture.save(buffer, format="PNG")
        else:
            picture.save(buffer, format="JPEG", quality=self.params.jpeg_quality)
        return buffer.getvalue()


def near_duplicate(picture: Image.Image) -> Image.Image:
    """The second shot of a 2020 duplicate pair: cropped 1 % per side, rescaled, 3 % brighter."""
    width, height = picture.size
    dx, dy = max(1, width // 100), max(1, height // 100)
    cropped = picture.crop((dx, dy, width - dx, height - dy)).resize(
        (width, height), Image.Resampling.BICUBIC
    )
    return ImageEnhance.Brightness(cropped).enhance(1.03)


def write_layouts(root: Path, plan: DemoPlan, sink: RenderingSink) -> dict[str, int]:
    counts = layouts.write_isic2016(root, sink, plan.isic2016_train, plan.isic2016_test, plan.conflicts)
    counts |= layouts.write_isic2017(root, sink, plan.isic2017, plan.superpixels)
    counts |= layouts.write_isic2018(root, sink, plan.isic2018_train, plan.isic2018_test)
    counts |= layouts.write_isic2019(root, sink, plan.isic2019, plan.downsampled)
    counts |= layouts.write_isic2020(root, sink, plan.isic2020, plan.duplicates)
    counts |= layouts.write_isic_archive(root, sink, plan.archive)
    counts |= layouts.write_ddi(root, sink, plan.ddi)
    return counts


def _publish(staging: Path, out_dir: Path) -> None:
    """Swap the finished staging tree into place, one top-level output at a time."""
    for name in OUTPUTS:
        target = out_dir / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        if (staging / name).exists():
            (staging / name).rename(target)
    staging.rmdir()


def generate_demo_data(params: DemoDataParams, out_dir: Path) -> DemoSummary:
    """Write the demo dataset under `out_dir` (created if needed); only the names in OUTPUTS are replaced."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = out_dir / STAGING
    if staging.exists():  # left over from a crashed run
        shutil.rmtree(staging)
    staging.mkdir()

    plan = plan_demo_data(params)
    sink = RenderingSink(staging, params, plan.corrupt, plan.missing)
    files = write_layouts(staging, plan, sink)
    files |= sink.per_folder
    files["demo_truth.csv"] = write_csv(
        staging / "demo_truth.csv", TRUTH_HEADER, sorted(sink.truth), newline="\n"
    )
    summary = DemoSummary(
        out_dir=out_dir,
        seed=params.seed,
        files=dict(sorted(files.items())),
        n_image_files=len(sink.truth),
        n_unique_images=len(sink.unique),
        quirks=list_quirks(plan),
    )
    payload = {"params": params.model_dump(mode="json"), **summary.to_dict()}
    write_bytes_atomic(staging / "demo_summary.json", (json.dumps(payload, indent=2) + "\n").encode())
    _publish(staging, out_dir)
    summary.seconds = time.perf_counter() - started
    return summary
