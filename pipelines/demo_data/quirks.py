"""The planted quirks of the real downloads, listed with the ids and files that carry them (DATA.md).

The plan plants them (`plan.plan_demo_data`) and the layouts write them; `list_quirks` names every one,
so tests and readers can check that each is handled.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.demo_data import layouts
from pipelines.demo_data.layouts import DemoImage
from pipelines.demo_data.plan import DemoPlan


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
