"""The `generation_report` stage: how good and how diverse the synthetic samples are (Class-N-Diff Table II).

Per group (all, benign, malignant, and each label x skin-tone cell): FID at the requested sample counts
(capped by what exists) against every real image of the group in `real_split`, and k-NN precision/recall;
per class: MS-SSIM over random same-class pairs for both sets (the real value is the reference: a generator
collapsing to few modes scores higher than the real data). Plots: the sample grid (Fig. 2) and the
KDE/PCA distributions (Fig. 3). Note the synthetic set follows the generation plan (mostly darker skin
tones), so the per-cell FIDs are the like-for-like comparison; the per-class ones mix skin tones
differently on the two sides.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from pipelines.atomic_files import atomic_path, write_json
from pipelines.generation_report.feature_networks import file_digest, inception_v3_from_file
from pipelines.generation_report.fid import extract_features, fid_at_counts
from pipelines.generation_report.images import ImageSet, real_image_set, synthetic_image_set
from pipelines.generation_report.ms_ssim import ms_ssim_settings, pair_ms_ssim, random_pairs
from pipelines.generation_report.params import GenerationReportParams
from pipelines.generation_report.plots import LABEL_NAMES, ROWS, distributions, sample_grid
from pipelines.generation_report.precision_recall import precision_recall
from pipelines.generation_report.reference_network import NAME as REFERENCE_NAME
from pipelines.generation_report.synthetic_quality import JudgedModel, run_synthetic_quality

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationReportOutputs:
    report: Path  # report.json: every number (DVC metrics)
    quality: Path  # quality.json: the synthetic_quality audit and gate (DVC metrics)
    fid_table: Path  # fid.csv: group, requested, n_synthetic, n_real, fid (DVC plots)
    sample_grid: Path
    distributions: Path
    summary: dict


def output_paths(out_dir: Path) -> dict[str, Path]:
    return {"report": out_dir / "report.json", "quality": out_dir / "quality.json", "fid_table": out_dir / "fid.csv",
            "sample_grid": out_dir / "sample_grid.png", "distributions": out_dir / "distributions.png"}


def feature_network_for(params: GenerationReportParams, classifier_features: nn.Module | None,
                        classifier_name: str | None, reference: nn.Module | None = None) -> tuple[nn.Module, str]:
    """The configured network and the name the report gives it."""
    if params.feature_network == "reference":
        if reference is None:
            raise ValueError("generation_report.feature_network 'reference' needs the quality audit's reference "
                             "network (pass models to judge)")
        return reference, REFERENCE_NAME
    if params.feature_network == "inception_v3":
        path = Path(params.inception_v3_path)
        return inception_v3_from_file(path), f"inception_v3 ({path.name}, sha256 {file_digest(path)})"
    if classifier_features is None:
        raise ValueError("generation_report.feature_network 'classifier' needs the classifier feature module")
    return classifier_features, classifier_name or "project classifier features"


def group_masks(attributes: pd.DataFrame) -> dict[str, np.ndarray]:
    label, group = attributes["label"].to_numpy(), attributes["skin_tone_group"].to_numpy()
    masks = {"all": np.ones(len(attributes), bool)}
    masks |= {LABEL_NAMES[k]: label == k for k in LABEL_NAMES}
    masks |= {f"{LABEL_NAMES[k]}_{g}": (label == k) & (group == g) for k, g in ROWS}
    return masks


def run_generation_report(params: GenerationReportParams, lesions_path: Path, data_root: Path, shards: Path,
                          out_dir: Path, classifier_features: nn.Module | None = None,
                          classifier_name: str | None = None, models: dict[str, JudgedModel] | None = None,
                          roundtrip=None, device: torch.device | str = "cpu") -> GenerationReportOutputs:  # noqa: ANN001
    """`models`: the generators to audit (quality.json; the gate reads `class_n_diff`); None skips the audit."""
    synthetic = synthetic_image_set(shards)
    if len(synthetic) == 0:
        raise ValueError(f"{shards}: no synthetic samples to report on")
    side = synthetic.load([0]).shape[1]
    out_dir.mkdir(parents=True, exist_ok=True)
    lesions = pd.read_parquet(lesions_path)
    audit = (run_synthetic_quality(params.quality, lesions, data_root, side, synthetic, models, out_dir, roundtrip)
             if models else None)
    network, network_name = feature_network_for(params, classifier_features, classifier_name,
                                                 audit.network if audit else None)
    network = network.to(device)
    real = real_image_set(lesions, data_root, params.real_split, side)
    features = {s.name: extract_features(network, tqdm(s.batches(range(len(s)), params.batch_size),
                                                       total=math.ceil(len(s) / params.batch_size),
                                                       desc=f"{s.name} features"), device)
                for s in (real, synthetic)}
    masks = {s.name: group_masks(s.attributes) for s in (real, synthetic)}
    rng = np.random.default_rng(params.seed)

    groups, fid_rows = {}, []
    for group in masks["synthetic"]:
        r, s = features["real"][masks["real"][group]], features["synthetic"][masks["synthetic"][group]]
        rows = fid_at_counts(r, s, params.sample_counts, params.seed)
        fid_rows += [{"group": group, **row} for row in rows]
        enough = r.shape[0] > params.k and s.shape[0] > params.k
        groups[group] = {"n_real": int(r.shape[0]), "n_synthetic": int(s.shape[0]), "fid": rows,
                         **(precision_recall(r, s, params.k) if enough else {"precision": None, "recall": None,
                                                                             "k": params.k})}
    levels, window = ms_ssim_settings(side)
    diversity = {name: {s.name: _diversity(s, masks[s.name][name], params, rng) for s in (real, synthetic)}
                 for name in ("benign", "malignant")}

    paths = output_paths(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plotted = {s.name: _plot_subset(s, params.plot_samples, rng) for s in (real, synthetic)}
    distributions(real.load(plotted["real"]), synthetic.load(plotted["synthetic"]),
                  features["real"][plotted["real"]], features["synthetic"][plotted["synthetic"]], rng, network_name,
                  paths["distributions"])
    sample_grid([real, synthetic], params.grid_columns, rng, paths["sample_grid"])
    table = pd.DataFrame(fid_rows, columns=["group", "requested", "n_synthetic", "n_real", "fid"])
    with atomic_path(paths["fid_table"]) as temp:
        table.to_csv(temp, index=False)
    summary = {
        "feature_network": network_name, "feature_dim": int(features["real"].shape[1]),
        "image_side": int(side), "real_split": params.real_split,
        "n_real": len(real), "n_synthetic": len(synthetic),
        "groups": groups,
        "ms_ssim": {"scales": levels, "window": window, "pairs_per_class": params.ms_ssim_pairs,
                    "by_class": diversity},
        "precision_recall_k": params.k,
        "fid_markdown": table.to_markdown(index=False),
    }
    if audit is not None:
        summary["quality"] = {k: v for k, v in audit.report.items() if k != "comparison_markdown"}
        summary["quality_markdown"] = audit.report["comparison_markdown"]
    write_json(summary, paths["report"])
    log.info("generation report (%s): FID all %s", network_name, groups["all"]["fid"])
    return GenerationReportOutputs(summary=summary, **paths)


def _diversity(images: ImageSet, mask: np.ndarray, params: GenerationReportParams,
               rng: np.random.Generator) -> float | None:
    members = np.flatnonzero(mask)
    pairs = random_pairs(len(members), params.ms_ssim_pairs, rng)
    if len(pairs) == 0:
        return None
    used = np.unique(pairs)
    loaded = images.load(members[used].tolist())
    position = {int(u): p for p, u in enumerate(used)}
    local = np.vectorize(position.get)(pairs)
    return pair_ms_ssim(loaded, local, params.batch_size)


def _plot_subset(images: ImageSet, n: int, rng: np.random.Generator) -> list[int]:
    chosen = rng.choice(len(images), size=min(n, len(images)), replace=False)
    return sorted(int(i) for i in chosen)
