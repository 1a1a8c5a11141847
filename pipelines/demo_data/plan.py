"""The demo plan: every image of every layout, re-released across years the way ISIC did (DATA.md §1).

`plan_demo_data` draws each source's images (`source_images`), then decides which image goes to which
year and split, and which ids carry a planted quirk (the label conflict, `_downsampled` names, the 2020
near-duplicates, a corrupt and a missing file, archive re-exports). Same params -> same plan.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from pipelines.demo_data.layouts import DemoImage
from pipelines.demo_data.params import DemoDataParams
from pipelines.demo_data.source_images import SourcePlanner
from pipelines.demo_data.sources import ARCHIVE_TERM_OF_2020, FILE_COPIES, SOURCES


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


def unique_image_target(params: DemoDataParams) -> float:
    """Unique ISIC images for `n_images` files (or for `n_patients` patients)."""
    if params.n_patients is not None:
        mean = {s: float(np.mean(params.images_per_patient)) for s in SOURCES}
        mean["isic2020"] = float(np.mean(params.images_per_patient_2020))
        return params.n_patients / sum(SOURCES[s][0] / mean[s] for s in SOURCES)
    return params.n_images / sum(share * FILE_COPIES.get(s, 1.0) for s, (share, _, _) in SOURCES.items())


def plan_demo_data(params: DemoDataParams) -> DemoPlan:
    planner = SourcePlanner(params)
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
