"""The stages, by name: what `dvc.yaml` (through the CLI) and the Dagster assets both run.

A stage is a plain function `run(params) -> outputs` (it writes files and returns their paths and a
summary) plus, where the stage's output is validated, `check(params) -> ValidationReport`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.config import Params
from pipelines.validation.report import ValidationReport


def run_demo_data(params: Params) -> Any:
    from pipelines.demo_data.generate import generate_demo_data

    return generate_demo_data(params.demo_data, params.path(params.demo_data_out))


def run_lesions(params: Params) -> Any:
    from pipelines.lesions.stage import run_lesions as run

    return run(params)


def check_lesions(params: Params) -> ValidationReport:
    from pipelines.lesions.stage import output_paths
    from pipelines.validation import validate_lesions

    path = output_paths(params)["lesions"]
    return validate_lesions(pd.read_parquet(path), Path(params.data_root), params.lesions.validation, str(path))


def run_skin_tone(params: Params) -> Any:
    from pipelines.skin_tone.report import run_skin_tone as run

    return run(params)


def run_external_sets(params: Params) -> Any:
    from pipelines.external_sets.stage import run_external_sets as run

    return run(params)


def check_external_sets(params: Params) -> ValidationReport:
    from pipelines.external_sets.stage import output_paths
    from pipelines.validation import validate_external_sets

    path = output_paths(params)["table"]
    return validate_external_sets(pd.read_parquet(path), Path(params.data_root), str(path))


def _lesions(params: Params) -> Path:
    return params.path(params.lesions.out) / "lesions.parquet"


def _shards(params: Params) -> Path:
    return params.path(params.latent_shards.out) / "shards"


def _external(params: Params) -> Path:
    return params.path(params.external_sets.out) / "external_sets.parquet"


def run_vae(params: Params) -> Any:
    from pipelines.vae.stage import run_vae as run

    return run(_lesions(params), Path(params.data_root), params.path(params.vae.out), params.vae)


def run_latent_shards(params: Params) -> Any:
    from pipelines.latent_shards.stage import run_latent_shards as run

    return run(_lesions(params), Path(params.data_root), params.path(params.vae.out),
               params.path(params.latent_shards.out), params.path(params.latent_shards.cache), params.latent_shards)


def check_latent_shards(params: Params) -> ValidationReport:
    from pipelines.latent_shards.checks import check_stage

    return check_stage(_lesions(params), Path(params.data_root), params.path(params.vae.out),
                       params.path(params.latent_shards.out), params.latent_shards.checks)


def training_folders(params: Params, stage: str) -> tuple[Path, Path]:
    """(run folder, report folder) of the `class_n_diff_model` or `dit_baseline` stage."""
    config = params.class_n_diff
    if stage == "dit_baseline":
        return params.path(config.baseline_out), params.path(config.baseline_report_out)
    return params.path(config.out), params.path(config.report_out)


def _train(params: Params, baseline: bool) -> Any:
    from pipelines.class_n_diff.stage import run_class_n_diff, run_dit_baseline

    config = params.class_n_diff
    run = run_dit_baseline if baseline else run_class_n_diff
    run_dir, report_dir = training_folders(params, "dit_baseline" if baseline else "class_n_diff_model")
    return run(_shards(params), run_dir, report_dir, config.train,
               checkpoint_dir=params.path(params.checkpoints) / run_dir.name,
               codec_spec=params.path(params.vae.out) / "codec.json",
               train_split=config.train_split, val_split=config.val_split)


def run_class_n_diff_model(params: Params) -> Any:
    return _train(params, baseline=False)


def run_dit_baseline(params: Params) -> Any:
    return _train(params, baseline=True)


def run_generation_plan(params: Params) -> Any:
    from pipelines.generation_plan.stage import run_generation_plan as run

    return run(params.generation_plan, _lesions(params), params.path(params.generation_plan.out))


def run_synthetic_shards(params: Params) -> Any:
    import torch

    from pipelines.synthetic_shards.stage import run_synthetic_shards as run
    from pipelines.trained_models import TrainedRun, open_codec_of

    trained = TrainedRun(params.path(params.class_n_diff.out))
    model, version = trained.dit_ema()
    classifier = trained.joint_classifier()
    codec = open_codec_of(params.path(params.vae.out))
    config = model.config
    return run(params.synthetic_shards, params.path(params.generation_plan.out) / "plan.parquet",
               params.path(params.synthetic_shards.out), model, codec.decode, version,
               (config.in_channels, *config.input_size), classify=lambda z: torch.sigmoid(classifier(z)).reshape(-1),
               condition_names=config.conditions)


def run_generation_report(params: Params) -> Any:
    from pipelines.generation_report.audit import codec_roundtrip
    from pipelines.generation_report.feature_networks import ClassifierFeatures
    from pipelines.generation_report.stage import run_generation_report as run
    from pipelines.generation_report.synthetic_quality import JudgedModel
    from pipelines.trained_models import TrainedRun, open_codec_of

    codec = open_codec_of(params.path(params.vae.out), "cpu")
    joint = TrainedRun(params.path(params.class_n_diff.out))
    # the quality audit judges the model whose samples feed the classifiers, and the DiT baseline beside it
    models = {"class_n_diff": JudgedModel(joint.dit_ema()[0], codec.decode)}
    baseline = TrainedRun(params.path(params.class_n_diff.baseline_out))
    if (baseline.run_dir / "dit_ema.safetensors").is_file():
        models["dit_baseline"] = JudgedModel(baseline.dit_ema()[0], codec.decode)
    config = params.generation_report
    if config.quality.sampling is None:  # the audit samples as the synthetic shards were sampled
        config = config.model_copy(update={"quality": config.quality.model_copy(
            update={"sampling": params.synthetic_shards.sampling})})
    features = None
    if params.generation_report.feature_network == "classifier":
        features = ClassifierFeatures(codec.encode, joint.joint_classifier())
    return run(config, _lesions(params), Path(params.data_root),
               params.path(params.synthetic_shards.out) / "shards", params.path(params.generation_report.out),
               classifier_features=features, classifier_name="class_n_diff latent classifier (offline)",
               models=models, roundtrip=codec_roundtrip(codec))



def check_generation_report(params: Params) -> ValidationReport:
    """The `synthetic_quality` gate on quality.json (thresholds in params): noise never reaches training."""
    import json

    from pipelines.generation_report.quality import gate

    path = params.path(params.generation_report.out) / "quality.json"
    return gate(json.loads(path.read_text()), params.generation_report.quality.limits(), str(path))


def run_downstream_classifiers(params: Params) -> Any:
    from pipelines.downstream_classifiers.stage import run_downstream_classifiers as run

    return run(params.downstream_classifiers, _lesions(params), _external(params),
               params.path(params.synthetic_shards.out), Path(params.data_root), params.path("downstream_classifiers"),
               plan=params.path(params.generation_plan.out) / "plan.parquet",
               checkpoints=params.path(params.checkpoints) / "downstream_classifiers")


def run_joint_classifier_predictions(params: Params) -> Any:
    from pipelines.joint_classifier.predict import run_joint_classifier_predictions as run

    return run(_lesions(params), _shards(params), _external(params),
               params.path(params.vae.out), params.path(params.class_n_diff.out), Path(params.data_root),
               params.path("joint_classifier"))


def run_diffusion_classifier_report(params: Params) -> Any:
    from pipelines.diffusion_classifier_report.stage import run_diffusion_classifier_report as run

    config = params.diffusion_classifier_report
    return run(params.path(params.class_n_diff.out), _shards(params), _lesions(params), params.path(params.vae.out),
               params.path(config.out), config, external_sets=_external(params), data_root=Path(params.data_root))


# folders holding predictions to score, side by side (pipelines/fairness/predictions.py schema)
PREDICTIONS = ("downstream_classifiers", "joint_classifier", "diffusion_classifier_report")


def run_fairness_report(params: Params) -> Any:
    from pipelines.atomic_files import write_parquet
    from pipelines.fairness.report import run_fairness_report as run

    out = params.path("fairness_report")
    tables = {}
    for name in ("predictions", "validation_predictions"):
        frames = [pd.read_parquet(params.path(folder) / f"{name}.parquet") for folder in PREDICTIONS
                  if (params.path(folder) / f"{name}.parquet").is_file()]
        tables[name] = write_parquet(pd.concat(frames, ignore_index=True), out / "inputs" / f"{name}.parquet")
    return run(tables["predictions"], tables["validation_predictions"], params.fairness_report, out)


def check_fairness_report(params: Params) -> ValidationReport:
    """The fairness check (the Dagster asset check `fairness_within_threshold`) as a stage check, so that
    `dvc repro` fails on it too."""
    import json

    from pipelines.fairness.check import fairness_check
    from pipelines.validation.report import ExpectationOutcome

    path = params.path("fairness_report") / "metrics.json"
    passed, details = fairness_check(json.loads(path.read_text()), params.fairness_report)
    outcomes = [ExpectationOutcome(f"fairness limits {details['limits']} for {details['classifier']}", None,
                                   passed, len(details["failures"]), details["failures"][:20],
                                   json.dumps(details["test_sets"], default=str))]
    return ValidationReport("fairness_check", str(path), outcomes)


@dataclass(frozen=True)
class Stage:
    run: Callable[[Params], Any]
    check: Callable[[Params], ValidationReport] | None = None


STAGES: dict[str, Stage] = {
    "demo_data": Stage(run_demo_data),
    "lesions": Stage(run_lesions, check_lesions),
    "skin_tone": Stage(run_skin_tone),
    "external_sets": Stage(run_external_sets, check_external_sets),
    "vae": Stage(run_vae),
    "latent_shards": Stage(run_latent_shards, check_latent_shards),
    "class_n_diff_model": Stage(run_class_n_diff_model),
    "dit_baseline": Stage(run_dit_baseline),
    "generation_plan": Stage(run_generation_plan),
    "synthetic_shards": Stage(run_synthetic_shards),
    "generation_report": Stage(run_generation_report, check_generation_report),
    "downstream_classifiers": Stage(run_downstream_classifiers),
    "joint_classifier_predictions": Stage(run_joint_classifier_predictions),
    "diffusion_classifier_report": Stage(run_diffusion_classifier_report),
    "fairness_report": Stage(run_fairness_report, check_fairness_report),
}
