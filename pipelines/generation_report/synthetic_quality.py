"""The quality audit of the `generation_report` stage: judge each generator, write quality.json, gate the data.

For each judged model (Class-N-Diff, whose samples feed the downstream classifiers, and the DiT baseline beside
it: the paper's Table II question, "does joint training lower the FID?") the audit draws samples with the
conditions of held-out half A, measures them with the real-only reference network (quality.py), and draws a
grid per requested cell and the closest synthetic/training pairs. The samples of the synthetic shards (what
really reaches training) get the skin-tone and label checks too. The gate reads the Class-N-Diff numbers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipelines.atomic_files import write_json
from pipelines.generation_report import quality as q
from pipelines.generation_report.audit import draw_audit_samples
from pipelines.generation_report.fid import extract_features, fid
from pipelines.generation_report.images import ImageSet, real_image_set
from pipelines.generation_report.params import QualityParams
from pipelines.generation_report.quality_plots import closest_pairs, grid_by_cell
from pipelines.generation_report.reference_network import NAME, ReferenceTraining, train_reference_network
from training.downstream.evaluate import roc_auc
from training.sampling import SamplingParams

log = logging.getLogger(__name__)
GATED = "class_n_diff"
GRID_COLUMNS = 8
# The grid's conditions: every label x skin-tone cell, GRID_COLUMNS samples each.
BALANCED = pd.DataFrame([{"label": label, "skin_tone_group": group} for label in (0, 1) for group in ("A", "B", "C")
                         for _ in range(GRID_COLUMNS)])


@dataclass(frozen=True)
class JudgedModel:
    model: torch.nn.Module  # the EMA DiT (eps-model with .config)
    decode: Callable[[torch.Tensor], torch.Tensor]  # scaled latents -> images in [-1, 1]


@dataclass(frozen=True)
class QualityAudit:
    report: dict  # what quality.json holds
    network: torch.nn.Module  # the real-only reference network, reused as the report's feature network


def load_all(images: ImageSet) -> np.ndarray:
    return images.load(range(len(images)))


def run_synthetic_quality(params: QualityParams, lesions: pd.DataFrame, data_root: Path, side: int,
                          shards: ImageSet | None, models: dict[str, JudgedModel], out_dir: Path,
                          roundtrip: Callable[[np.ndarray], np.ndarray] | None = None) -> QualityAudit:
    """`roundtrip`: uint8 images -> the codec's reconstructions; gives `fid_codec_floor`, the FID of held-out half A
    encoded and decoded by the VAE against half B: no generator decoding through this codec can do better."""
    train_set = real_image_set(lesions, data_root, "train", side)
    heldout_rows = lesions[lesions["split"].isin(["val", "test"])]
    heldout_set = real_image_set(heldout_rows.assign(split="heldout"), data_root, "heldout", side)
    train_images, heldout_images = load_all(train_set), load_all(heldout_set)
    network = train_reference_network(
        train_images, train_set.attributes["label"].to_numpy(), train_set.attributes["skin_tone_group"].to_numpy(),
        ReferenceTraining(params.reference_steps, params.reference_batch_size, seed=params.seed))
    features = {"train": _features(network, train_images), "heldout": _features(network, heldout_images)}
    heldout_attributes = heldout_set.attributes.reset_index(drop=True)
    halves = q.split_halves(heldout_attributes, params.seed)
    repeats = math.ceil(params.min_samples / len(halves.a))
    asked = pd.concat([heldout_attributes.iloc[halves.a]] * repeats, ignore_index=True)

    heldout_tone = heldout_attributes["skin_tone_group"].to_numpy()
    real_skin = q.measure_skin(heldout_images, params.min_skin_pixels)
    real_agreement, _ = q.skin_tone_agreement(real_skin, heldout_tone)
    skin_range = q.SkinColourRange.of(real_skin)
    report = {
        "reference_network": NAME,
        "reference_auc_heldout": roc_auc(heldout_attributes["label"].to_numpy(),
                                           network.malignant_probability(heldout_images)),
        "skin_tone_agreement_real_heldout": real_agreement,
        "skin_colour_range": {"hue_degrees": skin_range.hue, "chroma": skin_range.chroma},
        "skin_colour_plausible_real_heldout": q.skin_colour_plausibility(real_skin, heldout_tone, skin_range)[
            "skin_colour_plausible_worst_group"],
        "n_train": len(train_images), "n_heldout": len(heldout_images), "limits": params.limits(), "models": {},
    }
    sampling = params.sampling or SamplingParams()
    params = params.model_copy(update={"sampling": sampling})
    report["sampling"] = sampling.model_dump(mode="json")
    for name, judged in models.items():
        images = draw_audit_samples(judged.model, judged.decode, asked, sampling, desc=f"{name} audit")
        report["models"][name] = _judge(network, judged, images, asked, features, halves, params, train_images,
                                        skin_range, out_dir, name)
    if shards is not None and len(shards):
        shard_images = load_all(shards)
        shard_tone = shards.attributes["skin_tone_group"].to_numpy()
        shard_skin = q.measure_skin(shard_images, params.min_skin_pixels)
        agreement, confusion = q.skin_tone_agreement(shard_skin, shard_tone)
        report["shards"] = {"n": len(shard_images), "skin_tone_agreement": agreement, "confusion": confusion,
                            **q.skin_colour_plausibility(shard_skin, shard_tone, skin_range),
                            "label_auc": roc_auc(shards.attributes["label"].to_numpy(),
                                                   network.malignant_probability(shard_images))}
    if roundtrip is not None:
        reconstructed = roundtrip(heldout_images)
        floor = _features(network, reconstructed[halves.a])
        report["fid_codec_floor"] = fid(floor, features["heldout"][halves.b])
        # the label signal that survives the codec: the ceiling of label_auc for any generator decoding through it
        report["reference_auc_codec_roundtrip"] = roc_auc(heldout_attributes["label"].to_numpy(),
                                                            network.malignant_probability(reconstructed))
    gated = report["models"].get(GATED, {})
    report |= {k: gated.get(k) for k in ("fid_heldout", "fid_real_reference", "fid_ratio", "skin_tone_agreement",
                                         "label_auc", "memorized_fraction", "skin_colour_plausible_worst_group",
                                         "n_samples")}
    verdict = q.gate(report, params.limits(), str(out_dir / "quality.json"))
    report["passed"] = verdict.success
    report["failures"] = [o.describe() for o in verdict.failures]
    report["comparison_markdown"] = comparison_table(report)
    write_json(report, out_dir / "quality.json")
    log.info("synthetic quality: %s", "passed" if verdict.success else "FAILED " + "; ".join(report["failures"]))
    return QualityAudit(report, network)


def _features(network: torch.nn.Module, images: np.ndarray) -> torch.Tensor:
    return extract_features(network, (images[i:i + 128] for i in range(0, len(images), 128)))


def _judge(network, judged: JudgedModel, images: np.ndarray, asked: pd.DataFrame, features: dict,  # noqa: ANN001
           halves: q.HeldOutHalves, params: QualityParams, train_images: np.ndarray, skin_range: q.SkinColourRange,
           out_dir: Path, name: str) -> dict:
    synthetic = _features(network, images)
    asked_tone, asked_label = asked["skin_tone_group"].to_numpy(), asked["label"].to_numpy()
    skin = q.measure_skin(images, params.min_skin_pixels)
    agreement, confusion = q.skin_tone_agreement(skin, asked_tone)
    memo = q.memorization(synthetic, features["heldout"], features["train"])
    grid = grid_by_cell(draw_audit_samples(judged.model, judged.decode, BALANCED, params.sampling, f"{name} grid"),
                        BALANCED, out_dir / f"{name}_grid_by_cell.png", f"{name}: samples per asked cell")
    pairs = closest_pairs(images, train_images, memo["distances"], memo["neighbours"],
                          out_dir / f"{name}_closest_pairs.png", memo["threshold"])
    return {**q.fid_scores(synthetic, features["heldout"], halves),
            "skin_tone_agreement": agreement, "skin_tone_confusion": confusion,
            **q.skin_colour_plausibility(skin, asked_tone, skin_range),
            "label_auc": roc_auc(asked_label, network.malignant_probability(images)),
            "memorized_fraction": memo["memorized_fraction"], "memorization_threshold": memo["threshold"],
            "median_nn_distance_synthetic": memo["median_nn_distance_synthetic"],
            "median_nn_distance_heldout": memo["median_nn_distance_heldout"],
            "n_samples": len(images),
            "grid_by_cell": grid.name, "closest_pairs": pairs.name}


def comparison_table(report: dict) -> str:
    """Class-N-Diff vs DiT baseline (Table II on the demo), as markdown."""
    keys = ("fid_heldout", "fid_real_reference", "fid_ratio", "skin_tone_agreement", "label_auc",
            "memorized_fraction", "skin_colour_plausible", "skin_colour_plausible_worst_group", "n_samples")
    names = list(report["models"])
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for key in keys:
        cells = [report["models"][n].get(key) for n in names]
        lines.append(f"| {key} | " + " | ".join(f"{c:.3f}" if isinstance(c, float) else str(c) for c in cells) + " |")
    return "\n".join(lines)
