"""Dagster assets from latents to reports: VAE, latent shards, Class-N-Diff, generation, fairness."""

from __future__ import annotations

import json

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    asset_check,
    multi_asset,
)

from assets.code_versions import stage_code_version
from assets.pipeline_resource import PipelineResource
from assets.stage_asset import data_version, stage_asset, stage_check, summary_metadata
from pipelines.stages import STAGES, training_folders

vae = stage_asset(
    "vae", group="latents", deps=["lesions"],
    description="The image codec: a pretrained AutoencoderKL (hub id or folder), a small one fitted on the demo "
                "images, or the weight-free Haar wavelet; reconstruction PSNR/SSIM and a grid.",
    figures=lambda o: [o.grid])
latent_shards = stage_asset(
    "latent_shards", group="latents", deps=["lesions", "vae"],
    description="Every lesion image encoded once into WebDataset shards per split (posterior mean/std, fp16), "
                "with a manifest; incremental through a content-addressed cache.")
latent_shards_valid = stage_check(
    "latent_shards_valid", "latent_shards",
    "Per-split counts match the lesions table, no NaN/Inf, latent statistics in range, reconstruction PSNR, "
    "manifest hashes match the files.")

_DESCRIPTIONS = {
    "class_n_diff_model": "Class-N-Diff: the latent DiT and the latent classifier trained jointly (Table I preset).",
    "dit_baseline": "The same DiT trained alone (Table I setting 1), for comparison.",
}


@multi_asset(
    specs=[AssetSpec(name, group_name="class_n_diff", deps=["latent_shards", "vae"], description=text,
                     code_version=stage_code_version(name), skippable=True) for name, text in _DESCRIPTIONS.items()],
    can_subset=True, pool="gpu", name="class_n_diff_models")
def class_n_diff_models(context, pipeline: PipelineResource):  # noqa: ANN001 (dagster reads the hint)
    """Both training stages; side by side in two processes when both are selected (pipelines.class_n_diff.
    side_by_side), else the selected one in this process. Each is committed to DVC like any stage."""
    from pipelines.class_n_diff.side_by_side import train_side_by_side

    params = pipeline.params()
    selected = [n for n in _DESCRIPTIONS if AssetKey(n) in context.selected_asset_keys]
    if len(selected) > 1 and params.class_n_diff.side_by_side:
        train_side_by_side(selected, pipeline.params_file)
    else:
        for name in selected:
            STAGES[name].run(params)
    for name in selected:
        run_dir, report = training_folders(params, name)
        summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").is_file() else {}
        yield MaterializeResult(asset_key=name, data_version=data_version(pipeline.commit(name)),
                                metadata=summary_metadata(summary, [report / "loss_curve.png",
                                                                    report / "sample_grid.png"]))


generation_plan = stage_asset(
    "generation_plan", group="generation", deps=["lesions"],
    description="How many synthetic samples each label x skin-tone cell needs.")
synthetic_shards = stage_asset(
    "synthetic_shards", group="generation", deps=["generation_plan", "class_n_diff_model", "vae"], pool="gpu",
    description="Synthetic malignant and darker-skin samples (latents + PNG, provenance), filtered by the joint "
                "classifier, in the latent-shard format.")
generation_report = stage_asset(
    "generation_report", group="generation",
    deps=["synthetic_shards", "lesions", "class_n_diff_model", "dit_baseline", "vae"],
    description="FID, MS-SSIM diversity, precision/recall of the synthetic data; sample grids and distributions; "
                "the quality audit (held-out FID, skin-tone agreement, label AUC, memorisation) of Class-N-Diff and "
                "the DiT baseline side by side.",
    figures=lambda o: [o.sample_grid, *sorted(o.quality.parent.glob("*_grid_by_cell.png")),
                       *sorted(o.quality.parent.glob("*_closest_pairs.png")), o.distributions])
synthetic_quality = stage_check(
    "synthetic_quality", "generation_report",
    "The synthetic data is fit to train on: held-out FID ratio, skin-tone agreement (audit and shards), label AUC "
    "and memorised fraction within params' limits (generation_report.quality). Blocks downstream_classifiers.")

downstream_classifiers = stage_asset(
    "downstream_classifiers", group="evaluation",
    deps=["lesions", "external_sets", "synthetic_shards", "generation_plan", "generation_report"],
    pool="gpu",
    description="The experiment's arms, each over several seeds: a timm classifier trained on real images only "
                "(baseline), on real images with the plan's cells oversampled (oversampled), and on real + "
                "synthetic (augmented). Waits for the synthetic_quality gate.")
joint_classifier_predictions = stage_asset(
    "joint_classifier_predictions", group="evaluation",
    deps=["latent_shards", "external_sets", "class_n_diff_model", "vae"],
    description="The Class-N-Diff latent classifier's predictions on the ISIC test split and external sets.")
diffusion_classifier_report = stage_asset(
    "diffusion_classifier_report", group="evaluation",
    deps=["latent_shards", "class_n_diff_model", "vae", "external_sets"],
    pool="gpu",
    description="The conditional DiT as a classifier (majority vote over denoising errors, second paper): "
                "predictions, uncertainty curves, counterfactual explanations.",
    figures=lambda o: sorted(o.plots.glob("*.png")))
fairness_report = stage_asset(
    "fairness_report", group="evaluation",
    deps=["downstream_classifiers", "joint_classifier_predictions", "diffusion_classifier_report"],
    description="The experiment's headline (augmented vs baseline vs oversampled, paired CIs over images and "
                "seeds), then per skin-tone group (and sex, age, site, source) metrics with bootstrap CIs and gaps, "
                "classifiers side by side on every test set (Table III layout).",
    figures=lambda o: [*sorted(o.plots.glob("experiment__*.png")), *sorted(o.plots.glob("ddi__*.png"))])


@asset_check(asset="fairness_report", name="fairness_within_threshold", blocking=True,
             description="The promoted classifier's gaps between skin-tone groups stay within params' limits.")
def fairness_within_threshold(pipeline: PipelineResource) -> AssetCheckResult:
    import json

    from pipelines.fairness.check import fairness_check

    params = pipeline.params()
    metrics = json.loads((params.path("fairness_report") / "metrics.json").read_text())
    passed, details = fairness_check(metrics, params.fairness_report)
    return AssetCheckResult(passed=passed, severity=AssetCheckSeverity.ERROR,
                            metadata={"details": MetadataValue.json(json.loads(json.dumps(details, default=str)))})


ASSETS = [vae, latent_shards, class_n_diff_models, generation_plan, synthetic_shards, generation_report,
          downstream_classifiers, joint_classifier_predictions, diffusion_classifier_report, fairness_report]
CHECKS = [latent_shards_valid, synthetic_quality, fairness_within_threshold]
