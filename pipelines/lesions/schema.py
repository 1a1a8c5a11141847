"""The columns of the `lesions` table and of the intermediate per-source records.

Every reader (one per on-disk layout) returns *records*: one row per input CSV row that parsed, in the
columns of `RECORD_COLUMNS`, plus *rejects* in `REJECT_COLUMNS`. The `lesions` stage merges records
across sources into one row per image (`LESION_COLUMNS`).
"""

from __future__ import annotations

import re

# ISIC image ids: "ISIC_" + 7 digits (DATA.md, cross-cutting facts). 2019 adds a "_downsampled" suffix
# to some names; it is stripped before any join (the stripped id equals the 2016/2017 id).
ISIC_ID = re.compile(r"^ISIC_\d{7}$")
DOWNSAMPLED_SUFFIX = "_downsampled"

# Normalised diagnosis codes (ISIC 2019 vocabulary, plus what other years need):
#   AKIEC: HAM10000/2018's merged actinic keratosis + intraepithelial carcinoma (2019 splits it into AK/SCC)
#   BEN:   "benign" with no finer diagnosis (ISIC 2016 training labels, 2016 test 0.0)
#   UNK:   unknown / not given (ISIC 2020 "unknown", all benign by its target column)
#   OTHER: a named diagnosis outside the 2019 vocabulary (e.g. cafe-au-lait macule)
DIAGNOSES = ("MEL", "NV", "BCC", "AK", "AKIEC", "SCC", "BKL", "DF", "VASC", "BEN", "UNK", "OTHER")

# One row per parsed CSV row of one source.
RECORD_COLUMNS = (
    "isic_id",  # suffix-stripped id
    "source",  # "<layout>:<split>", e.g. "isic2019:train"
    "source_file",  # path of the CSV the row came from, relative to the data root when inside it
    "source_row",  # 1-based line number in that file (header = line 1 when there is one)
    "image_path",  # image file, relative to the data root (posix), or None when not found
    "diagnosis",  # one of DIAGNOSES
    "diagnosis_raw",  # the value as written in the source, e.g. "benign", "0.0", "MEL", "nevus"
    "sex",  # "male" / "female" / None
    "age_approx",  # float or NaN
    "anatom_site_general",  # lower-case site or None
    "patient_id",
    "lesion_id",
    "fitzpatrick",  # 1..6 when the source states it, else None
    "official_split",  # "train" / "val" / "test" of the challenge, None for archive exports
    "duplicate_of",  # id this row's image duplicates (ISIC 2020 duplicates CSV), else None
)

REJECT_COLUMNS = ("source_file", "source_row", "isic_id", "reason", "detail")

# Reject reasons (stable strings: tests and reports group by them).
MISSING_IMAGE = "missing_image"
CORRUPT_IMAGE = "corrupt_image"
UNKNOWN_LABEL = "unknown_label"
MALFORMED_ROW = "malformed_row"
LABEL_CONFLICT = "label_conflict"
UNSAFE_PATH = "unsafe_path"
EXCLUDED_BY_FILTER = "excluded_by_filter"  # external sets: outside a published subset (Bevan's Fitzpatrick17k)
REJECT_REASONS = (MISSING_IMAGE, CORRUPT_IMAGE, UNKNOWN_LABEL, MALFORMED_ROW, LABEL_CONFLICT, UNSAFE_PATH,
                  EXCLUDED_BY_FILTER)

# One row per image in the final table.
LESION_COLUMNS = (
    "isic_id",
    "sources",  # "|"-joined sorted list of every source the id appeared in
    "image_path",
    "diagnosis",
    "diagnosis_raw",
    "label",  # 0/1 by the configured label policy
    "sex",
    "age_approx",
    "anatom_site_general",
    "patient_id",
    "lesion_id",
    "fitzpatrick",  # known Fitzpatrick type 1..6 (nullable)
    "merged_ids",  # "|"-joined ids of duplicate images folded into this row (ISIC 2020 duplicate pairs)
    "width",
    "height",
    "sha256",  # of the image file's bytes
    "ita",  # individual typology angle of the healthy skin, degrees (NaN when not measurable)
    "chardon",  # Chardon 1991 category of `ita`
    "fst_estimate",  # Fitzpatrick group A/B/C estimated from `ita`
    "skin_tone_group",  # A (I-II) / B (III-IV) / C (V-VI): the known label when there is one, else the estimate
    "skin_tone_source",  # "label" / "ita" / "unknown"
    "split",  # "train" / "val" / "test"
)
