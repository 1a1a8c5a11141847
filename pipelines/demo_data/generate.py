"""The embedded demo dataset: synthetic dermoscopy images in the real ISIC on-disk layouts (DATA.md).

Three steps. *Plan* (`plan.plan_demo_data`): patients with a Fitzpatrick type, sex and age; lesions with a
diagnosis; images per source (`sources`, `source_images`), re-released across years the way ISIC did, with the
known quirks of the real downloads planted (`quirks.list_quirks`). *Render* (`rendering_sink`): every distinct
image once, with a child RNG of (seed, image key), so the bytes do not depend on the order of writing.
*Write*: `layouts` writes each year's files into a staging folder that is swapped into place at the end.
Same params -> same bytes.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipelines.demo_data import layouts
from pipelines.demo_data.layouts import write_bytes_atomic, write_csv
from pipelines.demo_data.params import DemoDataParams
from pipelines.demo_data.plan import DemoPlan, plan_demo_data
from pipelines.demo_data.quirks import Quirk, list_quirks
from pipelines.demo_data.rendering_sink import RenderingSink

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
