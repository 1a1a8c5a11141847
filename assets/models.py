"""Dagster assets from latents to reports: VAE, latent shards, Class-N-Diff, generation, fairness."""

from __future__ import annotations

from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue, asset_check

from assets.pipeline_resource import PipelineResource
from assets.stage_asset import stage_asset, stage_check

vae = stage_asset(
    "vae", group="latents", deps=["lesions"], folders=["pipelines/vae", "training/vae"],
    description="The image codec: a pretrained AutoencoderKL (hub id or folder), a small one fitted on the demo "
                "images, or the weight-free Haar wavelet; reconstruction PSNR/SSIM and a grid.",
    figures=lambda o: [o.grid])
latent_shards = stage_asset(
    "latent_shards", group="latents", deps=["lesions", "vae"],
    folders=["pipelines/latent_shards", "training/latent_shards"],
    description="Every lesion image encoded once into WebDataset shards per split (posterior mean/std, fp16), "
                "with a manifest; incremental through a content-addressed cache.")
latent_shards_valid = stage_check(
    "latent_shards_valid", "latent_shards",
    "Per-split counts match the lesions table, no NaN/Inf, latent statistics in range, reconstruction PSNR, "
    "manifest hashes match the files.")

_TRAINING = ["pipelines/class_n_diff", "training/class_n_diff", "training/diffusion", "training/train.py",
             "training/dit.py", "training/latent_classifier.py"]
class_n_diff_model = stage_asset(
    "class_n_diff_model", group="class_n_diff", deps=["latent_shards", "vae"], folders=_TRAINING, pool="gpu",
    description="Class-N-Diff: the latent DiT and the latent classifier trained jointly (Table I preset).",
    figures=lambda o: [o.loss_curve, o.sample_grid])
dit_baseline = stage_asset(
    "dit_baseline", group="class_n_diff", deps=["latent_shards", "vae"], folders=_TRAINING, pool="gpu",
    description="The same DiT trained alone (Table I setting 1), for comparison.",
    figures=lambda o: [o.loss_curve, o.sample_grid])

generation_plan = stage_asset(
    "generation_plan", group="generation", deps=["lesions"], folders=["pipelines/generation_plan"],
    description="How many synthetic samples each label x skin-tone cell needs.")
synthetic_shards = stage_asset(
    "synthetic_shards", group="generation", deps=["generation_plan", "class_n_diff_model", "vae"],
    folders=["pipelines/synthetic_shards", "training/sampling"], pool="gpu",
    description="Synthetic malignant and darker-skin samples (latents + PNG, provenance), filtered by the joint "
                "classifier, in the latent-shard format.")
generation_report = stage_asset(
    "generation_report", group="generation", deps=["synthetic_shards", "lesions", "class_n_diff_model"],
    folders=["pipelines/generation_report"],
    description="FID, MS-SSIM diversity, precision/recall of the synthetic data; sample grids and distributions.",
    figures=lambda o: [o.sample_grid, o.distributions])

downstream_classifiers = stage_asset(
    "downstream_classifiers", group="evaluation", deps=["lesions", "external_sets", "synthetic_shards"],
    folders=["pipelines/downstream_classifiers", "training/downstream"], pool="gpu",
    description="A timm classifier trained on real images only (baseline) and on real + synthetic (augmented).")
joint_classifier_predictions = stage_asset(
    "joint_classifier_predictions", group="evaluation",
    deps=["latent_shards", "external_sets", "class_n_diff_model", "vae"], folders=["pipelines/joint_classifier"],
    description="The Class-N-Diff latent classifier's predictions on the ISIC test split and external sets.")
diffusion_classifier_report = stage_asset(
    "diffusion_classifier_report", group="evaluation",
    deps=["latent_shards", "class_n_diff_model", "vae", "external_sets"],
    folders=["pipelines/diffusion_classifier_report", "training/diffusion_classifier"], pool="gpu",
    description="The conditional DiT as a classifier (majority vote over denoising errors, second paper): "
                "predictions, uncertainty curves, counterfactual explanations.",
    figures=lambda o: sorted(o.plots.glob("*.png")))
fairness_report = stage_asset(
    "fairness_report", group="evaluation",
    deps=["downstream_classifiers", "joint_classifier_predictions", "diffusion_classifier_report"],
    folders=["pipelines/fairness"],
    description="Per skin-tone group (and sex, age, site, source) metrics with bootstrap CIs and gaps, "
                "classifiers side by side on every test set (Table III layout).")


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


ASSETS = [vae, latent_shards, class_n_diff_model, dit_baseline, generation_plan, synthetic_shards, generation_report,
          downstream_classifiers, joint_classifier_predictions, diffusion_classifier_report, fairness_report]
CHECKS = [latent_shards_valid, fairness_within_threshold]
