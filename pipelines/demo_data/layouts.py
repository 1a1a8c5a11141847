"""One writer per on-disk layout of the ISIC downloads (DATA.md §1, §3.1, §4), byte for byte.

A writer gets the planned images of its layout, writes the CSVs exactly as the real files are written
(header or none, float text `0.0`/`1.0`, CRLF or LF, trailing newline or not) and hands every image file
to an `ImageSink`, which renders it (or plants a quirk). It returns the number of data rows per CSV.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

CRLF = "\r\n"  # every official challenge CSV (DATA.md, cross-cutting facts)
LF = "\n"  # HAM10000_metadata.csv, the 2018 Task 3 test GT copy, DDI and isic-cli exports (pandas / csv)


@dataclass(frozen=True)
class DemoImage:
    """One planned image: who it shows, its true label, and the metadata each layout prints for it."""

    isic_id: str  # suffix-stripped "ISIC_0000123"; "" for DDI
    source: str  # where it was first released: era2016, era2017, ham, ham_test, bcn, isic2020, archive, ddi
    fitzpatrick: int  # the true type 1..6 it is rendered with
    diagnosis: (
        str  # true diagnosis, `pipelines.lesions.schema.DIAGNOSES` code (finest known: AK/SCC not AKIEC)
    )
    detail: str = ""  # in the source's own words: 2020 `diagnosis`, archive `diagnosis_3`, DDI `disease`
    sex: str = ""  # "male" / "female" / "" when missing
    age: int | None = None  # multiple of 5
    site: str = ""  # ISIC 2019 `anatom_site_general` vocabulary, "" when missing
    patient_id: str = ""
    lesion_id: str = ""
    dx_type: str = ""  # HAM10000 only
    localization: str = ""  # HAM10000 only
    size: tuple[int, int] = (240, 180)  # (width, height)
    render_key: int = 0  # seeds the image: equal keys (and variant) give identical bytes
    variant: int = 0  # 1 = near-duplicate of the render_key image (ISIC 2020 duplicate pairs)
    ddi_id: int = 0

    @property
    def melanoma(self) -> bool:
        return self.diagnosis == "MEL"


class ImageSink(Protocol):
    def put(self, image: DemoImage, rel_path: str) -> None:
        """Write the image file at `rel_path` (relative to the output root), or plant its quirk."""


# --- CSV writing -----------------------------------------------------------------------------------------


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Temp file + rename: a crash never leaves half a file under the final name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_csv(
    path: Path,
    header: Sequence[str] | None,
    rows: Iterable[Sequence[object]],
    *,
    newline: str,
    trailing_newline: bool = True,
) -> int:
    """Write UTF-8 (no BOM) with the given line terminator; returns the number of data rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=newline)
    if header is not None:
        writer.writerow(header)
    count = 0
    for row in rows:
        writer.writerow(row)
        count += 1
    text = buffer.getvalue()
    if not trailing_newline and text.endswith(newline):
        text = text[: -len(newline)]
    write_bytes_atomic(path, text.encode("utf-8"))
    return count


def _float(flag: bool) -> str:
    return "1.0" if flag else "0.0"


def _onehot(code: str, classes: Sequence[str]) -> list[str]:
    if code not in classes:
        raise ValueError(f"diagnosis {code!r} has no column in {list(classes)}")
    return [_float(code == c) for c in classes]


def _age(image: DemoImage, missing: str = "") -> str:
    return missing if image.age is None else str(image.age)


def _by_id(images: Iterable[DemoImage]) -> list[DemoImage]:
    return sorted(images, key=lambda im: im.isic_id)


# --- ISIC 2016 (DATA.md §1.1) ---------------------------------------------------------------------------

ISIC2016_TRAIN_GT = "ISBI2016_ISIC_Part3_Training_GroundTruth.csv"
ISIC2016_TEST_GT = "ISBI2016_ISIC_Part3_Test_GroundTruth.csv"


def write_isic2016(
    root: Path, sink: ImageSink, train: list[DemoImage], test: list[DemoImage], benign_in_2016: set[str]
) -> dict[str, int]:
    """No header in either file; train says benign/malignant (no trailing newline), test says 0.0/1.0.

    `benign_in_2016`: melanomas labelled benign here (the ISIC_0000077 label conflict).
    """

    def malignant(im: DemoImage) -> bool:
        return im.melanoma and im.isic_id not in benign_in_2016

    for folder, images in (
        ("ISBI2016_ISIC_Part3_Training_Data", train),
        ("ISBI2016_ISIC_Part3_Test_Data", test),
    ):
        for im in images:
            sink.put(im, f"isic2016/{folder}/{im.isic_id}.jpg")
    rows_train = [(im.isic_id, "malignant" if malignant(im) else "benign") for im in _by_id(train)]
    rows_test = [(im.isic_id, _float(malignant(im))) for im in _by_id(test)]
    return {
        f"isic2016/{ISIC2016_TRAIN_GT}": write_csv(
            root / "isic2016" / ISIC2016_TRAIN_GT, None, rows_train, newline=CRLF, trailing_newline=False
        ),
        f"isic2016/{ISIC2016_TEST_GT}": write_csv(
            root / "isic2016" / ISIC2016_TEST_GT, None, rows_test, newline=CRLF
        ),
    }


# --- ISIC 2017 (DATA.md §1.2) ---------------------------------------------------------------------------

ISIC2017_SPLITS = ("Training", "Validation", "Test_v2")


def _superpixels_png(image: DemoImage) -> bytes:
    """A stand-in for the Part 2 superpixel map: a label image encoded in RGB, blocky, deterministic."""
    width, height = image.size
    rng = np.random.default_rng(image.render_key)
    labels = rng.integers(0, 2**16, (height // 20 + 1, width // 20 + 1), dtype=np.uint32)
    labels = np.kron(labels, np.ones((20, 20), dtype=np.uint32))[:height, :width]
    rgb = np.stack([labels & 0xFF, (labels >> 8) & 0xFF, np.zeros_like(labels)], axis=-1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def write_isic2017(
    root: Path, sink: ImageSink, splits: dict[str, list[DemoImage]], superpixels: set[str]
) -> dict[str, int]:
    """GT `image_id,melanoma,seborrheic_keratosis` (nevus = both 0.0); per-folder metadata CSV and
    `_superpixels.png` files next to the JPEGs, so readers must filter on `.jpg`."""
    counts = {}
    for split in ISIC2017_SPLITS:
        images = _by_id(splits[split])
        folder = root / "isic2017" / f"ISIC-2017_{split}_Data"
        for im in images:
            sink.put(im, f"isic2017/{folder.name}/{im.isic_id}.jpg")
            if im.isic_id in superpixels:
                write_bytes_atomic(folder / f"{im.isic_id}_superpixels.png", _superpixels_png(im))
        gt_name = f"ISIC-2017_{split}_Part3_GroundTruth.csv"
        gt_rows = [(im.isic_id, _float(im.melanoma), _float(im.diagnosis == "BKL")) for im in images]
        counts[f"isic2017/{gt_name}"] = write_csv(
            root / "isic2017" / gt_name,
            ("image_id", "melanoma", "seborrheic_keratosis"),
            gt_rows,
            newline=CRLF,
        )
        meta_name = f"ISIC-2017_{split}_Data_metadata.csv"
        meta_rows = [(im.isic_id, _age(im, "unknown"), im.sex or "unknown") for im in images]
        counts[f"isic2017/{folder.name}/{meta_name}"] = write_csv(
            folder / meta_name, ("image_id", "age_approximate", "sex"), meta_rows, newline=CRLF
        )
    return counts


# --- ISIC 2018 Task 3 / HAM10000 (DATA.md §1.3) ---------------------------------------------------------

ISIC2018_CLASSES = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
# 2018 merges actinic keratosis and intraepithelial carcinoma; 2019 splits them again into AK / SCC.
_AKIEC = {"AK": "AKIEC", "SCC": "AKIEC"}
ATTRIBUTION_TXT = "ISIC 2018 Task 3 demo data: synthetic images, no patient data.\n"
LICENSE_TXT = "Synthetic demo data for tests. The real ISIC 2018 data is CC BY-NC 4.0.\n"


def isic2018_code(image: DemoImage) -> str:
    return _AKIEC.get(image.diagnosis, image.diagnosis)


def _isic2018_split(
    root: Path, sink: ImageSink, images: list[DemoImage], split: str, newline: str
) -> dict[str, int]:
    inputs = f"ISIC2018_Task3_{split}_Input"
    truth = f"ISIC2018_Task3_{split}_GroundTruth"
    for folder in (inputs, truth):
        write_bytes_atomic(root / "isic2018" / folder / "ATTRIBUTION.txt", ATTRIBUTION_TXT.encode())
        write_bytes_atomic(root / "isic2018" / folder / "LICENSE.txt", LICENSE_TXT.encode())
    for im in images:
        sink.put(im, f"isic2018/{inputs}/{im.isic_id}.jpg")
    rows = [(im.isic_id, *_onehot(isic2018_code(im), ISIC2018_CLASSES)) for im in _by_id(images)]
    name = f"isic2018/{truth}/{truth}.csv"
    return {name: write_csv(root / name, ("image", *ISIC2018_CLASSES), rows, newline=newline)}


def write_isic2018(
    root: Path, sink: ImageSink, train: list[DemoImage], test: list[DemoImage]
) -> dict[str, int]:
    """Training GT is CRLF; the test GT copy and HAM10000_metadata.csv are LF (DATA.md, cross-cutting)."""
    counts = _isic2018_split(root, sink, train, "Training", CRLF)
    counts |= _isic2018_split(root, sink, test, "Test", LF)
    # HAM10000 lists rows grouped by diagnosis, a lesion's images together; age is a float like `80.0`.
    ham = sorted(train, key=lambda im: (isic2018_code(im).lower(), im.lesion_id, im.isic_id))
    rows = [
        (
            im.lesion_id,
            im.isic_id,
            isic2018_code(im).lower(),
            im.dx_type,
            f"{im.age:.1f}" if im.age is not None else "",
            im.sex or "unknown",
            im.localization or "unknown",
        )
        for im in ham
    ]
    header = ("lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization")
    counts["isic2018/HAM10000_metadata.csv"] = write_csv(
        root / "isic2018" / "HAM10000_metadata.csv", header, rows, newline=LF
    )
    return counts


# --- ISIC 2019 Task 1 (DATA.md §1.4) --------------------------------------------------------------------

ISIC2019_CLASSES = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")


def isic2019_name(image: DemoImage, downsampled: set[str]) -> str:
    return f"{image.isic_id}_downsampled" if image.isic_id in downsampled else image.isic_id


def write_isic2019(
    root: Path, sink: ImageSink, images: list[DemoImage], downsampled: set[str]
) -> dict[str, int]:
    """GT one-hot with UNK all 0.0 and metadata in the same row order; `_downsampled` names in both CSVs
    and in the file name."""
    images = _by_id(images)
    for im in images:
        sink.put(im, f"isic2019/ISIC_2019_Training_Input/{isic2019_name(im, downsampled)}.jpg")
    gt = [(isic2019_name(im, downsampled), *_onehot(im.diagnosis, ISIC2019_CLASSES)) for im in images]
    meta = [(isic2019_name(im, downsampled), _age(im), im.site, im.lesion_id, im.sex) for im in images]
    return {
        "isic2019/ISIC_2019_Training_GroundTruth.csv": write_csv(
            root / "isic2019" / "ISIC_2019_Training_GroundTruth.csv",
            ("image", *ISIC2019_CLASSES),
            gt,
            newline=CRLF,
        ),
        "isic2019/ISIC_2019_Training_Metadata.csv": write_csv(
            root / "isic2019" / "ISIC_2019_Training_Metadata.csv",
            ("image", "age_approx", "anatom_site_general", "lesion_id", "sex"),
            meta,
            newline=CRLF,
        ),
    }


# --- ISIC 2020 (DATA.md §1.5) ---------------------------------------------------------------------------

ISIC2020_HEADER = (
    "image_name",
    "patient_id",
    "sex",
    "age_approx",
    "anatom_site_general_challenge",
    "diagnosis",
    "benign_malignant",
    "target",
)


def isic2020_site(site: str) -> str:
    """2020 collapses anterior/posterior/lateral torso into `torso`."""
    return "torso" if site.endswith("torso") else site


def write_isic2020(
    root: Path, sink: ImageSink, images: list[DemoImage], duplicates: list[tuple[str, str]]
) -> dict[str, int]:
    """v1 ground truth (target 1 exactly when diagnosis is melanoma) and the duplicates list."""
    images = _by_id(images)
    for im in images:
        sink.put(im, f"isic2020/train/{im.isic_id}.jpg")
    rows = [
        (
            im.isic_id,
            im.patient_id,
            im.sex,
            _age(im),
            isic2020_site(im.site),
            im.detail,
            "malignant" if im.melanoma else "benign",
            int(im.melanoma),
        )
        for im in images
    ]
    return {
        "isic2020/ISIC_2020_Training_GroundTruth.csv": write_csv(
            root / "isic2020" / "ISIC_2020_Training_GroundTruth.csv", ISIC2020_HEADER, rows, newline=CRLF
        ),
        "isic2020/ISIC_2020_Training_Duplicates.csv": write_csv(
            root / "isic2020" / "ISIC_2020_Training_Duplicates.csv",
            ("image_name_1", "image_name_2"),
            sorted(duplicates),
            newline=CRLF,
        ),
    }


# --- ISIC Archive export by isic-cli (DATA.md §4) -------------------------------------------------------

ARCHIVE_KEYS = (
    "age_approx",
    "anatom_site_general",
    "diagnosis_1",
    "diagnosis_2",
    "diagnosis_3",
    "fitzpatrick_skin_type",
    "image_type",
    "lesion_id",
    "patient_id",
    "sex",
)  # sorted union
# diagnosis_3 -> (diagnosis_1, diagnosis_2) of the isic-metadata hierarchy. "" = only diagnosis_1 given.
ARCHIVE_HIERARCHY = {
    "Melanoma Invasive": ("Malignant", "Malignant melanocytic proliferations (Melanoma)"),
    "Melanoma in situ": ("Malignant", "Malignant melanocytic proliferations (Melanoma)"),
    "Melanoma, NOS": ("Malignant", "Malignant melanocytic proliferations (Melanoma)"),
    "Nevus": ("Benign", "Benign melanocytic proliferations"),
    "Seborrheic keratosis": ("Benign", "Benign epidermal proliferations"),
    "Solar lentigo": ("Benign", "Benign epidermal proliferations"),
    "Dermatofibroma": ("Benign", "Benign soft tissue proliferations - Fibro-histiocytic"),
    "Basal cell carcinoma": ("Malignant", "Malignant adnexal epithelial proliferations - Follicular"),
    "Squamous cell carcinoma, Invasive": ("Malignant", "Malignant epidermal proliferations"),
    "Solar or actinic keratosis": ("Indeterminate", "Indeterminate epidermal proliferations"),
    "": ("Benign", ""),
}
ARCHIVE_ATTRIBUTIONS = (
    ("Demo Skin Clinic, Department of Dermatology, Example University", "CC-BY"),  # a comma -> quoted field
    ("Anonymous", "CC-0"),
    ("Example Tele-dermatology Network", "CC-BY-NC"),
)
ROMAN = ("I", "II", "III", "IV", "V", "VI")


def _archive_attribution(image: DemoImage) -> tuple[str, str]:
    # 70 % the first contributor; fixed by the id so that it does not depend on the order of images.
    number = int(image.isic_id[5:])
    return ARCHIVE_ATTRIBUTIONS[0 if number % 10 < 7 else 1 + number % 2]


def write_isic_archive(root: Path, sink: ImageSink, images: list[DemoImage]) -> dict[str, int]:
    """`<isic_id>.jpg`, metadata.csv (fixed columns then the sorted union of keys), attribution.txt and one
    licenses/<license>.txt per licence used."""
    images = _by_id(images)
    rows, used = [], {}
    for im in images:
        sink.put(im, f"isic_archive/{im.isic_id}.jpg")
        attribution, license_ = _archive_attribution(im)
        used[license_] = used.get(license_, set()) | {attribution}
        level1, level2 = ARCHIVE_HIERARCHY[im.detail]
        rows.append(
            (
                im.isic_id,
                attribution,
                license_,
                _age(im),
                im.site,
                level1,
                level2,
                im.detail,
                ROMAN[im.fitzpatrick - 1],
                "dermoscopic",
                im.lesion_id,
                im.patient_id,
                im.sex,
            )
        )
    counts = {
        "isic_archive/metadata.csv": write_csv(
            root / "isic_archive" / "metadata.csv",
            ("isic_id", "attribution", "copyright_license", *ARCHIVE_KEYS),
            rows,
            newline=LF,
        )
    }
    lines = [f"{a} ({lic})" for lic in sorted(used) for a in sorted(used[lic])]
    write_bytes_atomic(root / "isic_archive" / "attribution.txt", ("\n".join(lines) + "\n").encode())
    for license_ in sorted(used):
        text = f"{license_}: synthetic demo images; see https://creativecommons.org/ for the licence text.\n"
        write_bytes_atomic(root / "isic_archive" / "licenses" / f"{license_}.txt", text.encode())
    return counts


# --- DDI (DATA.md §3.1) ---------------------------------------------------------------------------------

DDI_MALIGNANT = frozenset(
    {
        "melanoma",
        "melanoma-in-situ",
        "melanoma-acral-lentiginous",
        "nodular-melanoma-(nm)",
        "basal-cell-carcinoma",
        "squamous-cell-carcinoma-in-situ",
        "mycosis-fungoides",
    }
)
DDI_TONE = {1: 12, 2: 12, 3: 34, 4: 34, 5: 56, 6: 56}  # skin_tone = FST I-II / III-IV / V-VI


def write_ddi(root: Path, sink: ImageSink, images: list[DemoImage]) -> dict[str, int]:
    """`000001.png ...` and ddi_metadata.csv with pandas' unnamed index column first; `TRUE`/`FALSE`."""
    images = sorted(images, key=lambda im: im.ddi_id)
    rows = []
    for index, im in enumerate(images):
        name = f"{im.ddi_id:06d}.png"
        sink.put(im, f"ddi/{name}")
        malignant = "TRUE" if im.detail in DDI_MALIGNANT else "FALSE"
        rows.append((index, im.ddi_id, name, DDI_TONE[im.fitzpatrick], malignant, im.detail))
    header = ("", "DDI_ID", "DDI_file", "skin_tone", "malignant", "disease")
    return {"ddi/ddi_metadata.csv": write_csv(root / "ddi" / "ddi_metadata.csv", header, rows, newline=LF)}
