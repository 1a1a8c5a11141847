"""MClass (Brinker et al., Eur J Cancer 2019): two 100-image benchmarks, 20 melanomas / 80 nevi each.

Layout (DATA.md §3.4): MClass-D (dermoscopic) `BenchmarkDermoscopic/{benign,malign}/*.jpg`, MClass-ND
(clinical) `BenchmarkClinical/{benign,malignant}/` — note `malign` vs `malignant`; both spellings are
accepted in both so a re-zipped copy still loads. `root` holds the benchmark folder (or is it).
Target = melanoma: every malignant image is a melanoma, every benign one a nevus.

MClass-D's file names are ISIC ids, all ISIC 2016 *test* images, 95 of them also in ISIC 2019 train
and 79 in 2017 train (DATA.md §3.4): `mclass_d_isic_ids` lists them so training can drop them.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import pandas as pd

from pipelines.external_sets.class_folders import list_image_files, load_class_folders
from pipelines.external_sets.external_table import ExternalTable
from pipelines.external_sets.schema import CLINICAL, DERMOSCOPIC

BENCHMARKS = {"d": ("BenchmarkDermoscopic", DERMOSCOPIC), "nd": ("BenchmarkClinical", CLINICAL)}
CLASSES = {"benign": 0, "malign": 1, "malignant": 1}
ISIC_ID = re.compile(r"^ISIC_\d{7}$")  # DATA.md cross-cutting facts
DOWNSAMPLED_SUFFIX = "_downsampled"  # ISIC 2019 renaming; stripped before any join (DATA.md)


def load_mclass(root: Path, data_root: Path, *, benchmark: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(records, rejects) for every image of MClass-D (`benchmark="d"`) or MClass-ND (`"nd"`)."""
    if benchmark not in BENCHMARKS:
        raise ValueError(f"MClass benchmark {benchmark!r}: expected one of {sorted(BENCHMARKS)}")
    _, modality = BENCHMARKS[benchmark]
    table = ExternalTable(f"mclass_{benchmark}", Path(root), data_root, modality)
    return load_class_folders(table, benchmark_folder(Path(root), benchmark), CLASSES)


def benchmark_folder(root: Path, benchmark: str) -> Path:
    """`root/BenchmarkDermoscopic` (or `.../BenchmarkClinical`), or `root` when it is that folder."""
    name, _ = BENCHMARKS[benchmark]
    if root.name == name:
        return root
    if (root / name).is_dir():
        return root / name
    raise FileNotFoundError(f"{root}: expected folder {name}/ with benign/ and malign(ant)/ inside")


def mclass_d_isic_ids(root: Path) -> set[str]:
    """ISIC ids of every MClass-D image file (any folder, rejected or not): to remove from ISIC
    training, since all 100 are ISIC 2016 test images and most reappear in 2017/2019 train."""
    ids = set()
    for name in list_image_files(benchmark_folder(Path(root), "d")):
        stem = PurePosixPath(name).stem.removesuffix(DOWNSAMPLED_SUFFIX)
        if ISIC_ID.match(stem):
            ids.add(stem)
    return ids
