"""Typed parameters, read from `params.yaml` (DVC tracks the same keys per stage).

Every path in params is relative to `data_root` unless absolute. The Dagster assets and the CLI both
call `load_params`, so the UI, `dvc repro` and the tests see one configuration.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipelines.class_n_diff.params import ClassNDiffParams
from pipelines.demo_data.params import DemoDataParams
from pipelines.diffusion_classifier_report.params import DiffusionClassifierReportParams
from pipelines.fairness.params import FairnessParams
from pipelines.generation_plan.params import GenerationPlanParams
from pipelines.generation_report.params import GenerationReportParams
from pipelines.latent_shards.params import LatentShardsParams
from pipelines.profiles import apply_profile
from pipelines.run_records.params import RunRecordsParams
from pipelines.synthetic_shards.params import SyntheticShardsParams
from pipelines.vae.params import VaeParams
from training.downstream.params import DownstreamParams


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceParams(Strict):
    layout: str  # a key of pipelines.lesions.readers.READERS
    path: str  # folder holding the official files of that download
    # isic2020 only: the official ISIC_2020_Training_Duplicates.csv when the folder has none (Kaggle's layout)
    duplicates: str | None = None


class SplitParams(Strict):
    seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.2
    # Sources ("isic2016:test", ...) whose images are forced into the test split (official test sets).
    official_test_sources: list[str] = Field(default_factory=list)


class ValidationParams(Strict):
    # Melanoma rate bounds of the whole table: ISIC 2016-2019 are ~10-20 % melanoma, 2020 1.8 %.
    label_rate_min: float = 0.01
    label_rate_max: float = 0.5


class LesionsParams(Strict):
    sources: list[SourceParams]
    label_policy: str = "melanoma"  # pipelines.lesions.labels.POLICIES
    split: SplitParams = SplitParams()
    validation: ValidationParams = ValidationParams()
    workers: int = 2  # image-scan processes
    min_skin_pixels: int = 200  # fewer healthy-skin pixels -> skin tone "unknown"
    # MClass-D (DATA.md §3.4) are ISIC 2016 test images; when an external set named `mclass_d` is
    # configured, its ids are forced into the test split so no classifier trains on them.
    out: str = "lesions"


class SkinToneParams(Strict):
    # CSV with true Fitzpatrick types per image (`image_path`, `fitzpatrick`): the demo generator writes
    # one; on real data leave it empty and the report covers the images with a known label.
    truth: str | None = None
    out: str = "skin_tone"


class ExternalSetParams(Strict):
    name: str  # a key of pipelines.external_sets.EXTERNAL_SETS
    path: str
    options: dict[str, bool | int | float | str] = Field(default_factory=dict)  # e.g. bevan_filter: true


class ExternalSetsParams(Strict):
    sets: list[ExternalSetParams] = Field(default_factory=list)
    out: str = "external_sets"


class ScheduleParams(Strict):
    cron: str = "0 2 * * *"  # nightly at 02:00
    timezone: str = "UTC"  # an IANA name, e.g. Europe/Berlin


class Params(Strict):
    data_root: str = "data"
    demo_data: DemoDataParams = DemoDataParams()
    demo_data_out: str = "raw/demo"
    # Resumable training state (<checkpoints>/<run folder name>): NOT a DVC out (gitignored, never cached or
    # pushed); a real Class-N-Diff checkpoint is ~7 GB (training/checkpoint_policy.py).
    checkpoints: str = "checkpoints"
    lesions: LesionsParams
    skin_tone: SkinToneParams = SkinToneParams()
    external_sets: ExternalSetsParams = ExternalSetsParams()
    schedule: ScheduleParams = ScheduleParams()
    vae: VaeParams = VaeParams()
    latent_shards: LatentShardsParams = LatentShardsParams()
    class_n_diff: ClassNDiffParams = ClassNDiffParams()
    generation_plan: GenerationPlanParams = GenerationPlanParams()
    synthetic_shards: SyntheticShardsParams = SyntheticShardsParams()
    generation_report: GenerationReportParams = GenerationReportParams()
    downstream_classifiers: DownstreamParams = DownstreamParams()
    fairness_report: FairnessParams = FairnessParams()
    diffusion_classifier_report: DiffusionClassifierReportParams = DiffusionClassifierReportParams()
    run_records: RunRecordsParams = RunRecordsParams()

    @model_validator(mode="after")
    def _known_names(self) -> Params:
        from pipelines.lesions.labels import POLICIES
        from pipelines.lesions.readers import READERS, TAKES_DUPLICATES

        for source in self.lesions.sources:
            if source.layout not in READERS:
                raise ValueError(f"lesions.sources: layout {source.layout!r} not in {sorted(READERS)}")
            if source.duplicates is not None and source.layout not in TAKES_DUPLICATES:
                raise ValueError(f"lesions.sources: `duplicates` is read for layouts {sorted(TAKES_DUPLICATES)} "
                                 f"only, not {source.layout!r} ({source.path})")
        if self.lesions.label_policy not in POLICIES:
            raise ValueError(f"lesions.label_policy {self.lesions.label_policy!r} not in {sorted(POLICIES)}")
        return self

    def path(self, relative: str, root: Path | None = None) -> Path:
        """A params path resolved against the data root (itself relative to `root`, default the CWD)."""
        data_root = Path(self.data_root) if root is None else root / self.data_root
        candidate = Path(relative)
        return candidate if candidate.is_absolute() else data_root / candidate


def load_params(path: Path | str = "params.yaml", profile: str | None = None) -> Params:
    """The params file, validated; with `profile`, as it reads once that profile is applied (pipelines/profiles.py:
    the stages themselves run what the file says, the values DVC records)."""
    path = Path(path)
    with path.open() as handle:
        raw = yaml.safe_load(handle) or {}
    if profile is not None:
        raw = apply_profile(raw, profile)
    try:
        return Params.model_validate(raw)
    except ValueError as error:
        raise ValueError(f"{path}{f' with profile {profile}' if profile else ''}: {error}") from error
