"""Put real ISIC ground-truth CSVs into their download layout, with placeholder image files.

The real CSVs carry no images; readers only check that an image file exists (decoding is the image
scan's job), so empty placeholder files named after every id in the CSV stand in for the JPEGs.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXCERPTS = REPO / "tests" / "fixtures" / "isic"
SHARED = REPO.parent / "shared" / "fixtures" / "isic"

# layout -> [(csv name, folder inside the layout root for the csv, image folder, id column or None=first)]
LAYOUTS: dict[str, list[tuple[str, str, str, str | None]]] = {
    "isic2016": [
        ("ISBI2016_ISIC_Part3_Training_GroundTruth.csv", "", "ISBI2016_ISIC_Part3_Training_Data", None),
        ("ISBI2016_ISIC_Part3_Test_GroundTruth.csv", "", "ISBI2016_ISIC_Part3_Test_Data", None),
    ],
    "isic2017": [
        ("ISIC-2017_Training_Part3_GroundTruth.csv", "", "ISIC-2017_Training_Data", "image_id"),
        ("ISIC-2017_Validation_Part3_GroundTruth.csv", "", "ISIC-2017_Validation_Data", "image_id"),
        ("ISIC-2017_Test_v2_Part3_GroundTruth.csv", "", "ISIC-2017_Test_v2_Data", "image_id"),
    ],
    "isic2018": [
        ("ISIC2018_Task3_Test_GroundTruth.csv", "ISIC2018_Task3_Test_GroundTruth", "ISIC2018_Task3_Test_Input",
         "image"),
    ],
    "isic2019": [
        ("ISIC_2019_Training_GroundTruth.csv", "", "ISIC_2019_Training_Input", "image"),
        ("ISIC_2019_Training_Metadata.csv", "", "", None),
    ],
    "isic2020": [
        ("ISIC_2020_Training_GroundTruth.csv", "", "train", "image_name"),
        ("ISIC_2020_Training_Duplicates.csv", "", "", None),
    ],
}


def stage_layout(root: Path, layout: str, source: Path = EXCERPTS, skip_images: set[str] = frozenset()) -> Path:
    """Copy `layout`'s CSVs from `source` into `root/layout` and create a placeholder per image id."""
    target = root / layout
    for name, csv_folder, image_folder, id_column in LAYOUTS[layout]:
        (target / csv_folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, target / csv_folder / name)
        if not image_folder:
            continue
        images = target / image_folder
        images.mkdir(parents=True, exist_ok=True)
        with (source / name).open(newline="") as handle:
            rows = csv.reader(handle)
            if id_column is not None:
                column = next(rows).index(id_column)
            else:
                column = 0
            for row in rows:
                if row and row[column] not in skip_images:
                    (images / f"{row[column]}.jpg").touch()
    return target
