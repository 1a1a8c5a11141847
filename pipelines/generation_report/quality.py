"""Is the synthetic data good enough to train on? Four numbers, each with a scale, and the gate over them.

All measured by the real-only reference network (reference_network.py), on held-out real images (val + test:
never the generator's training images):

- `fid_heldout` / `fid_real_reference`: the held-out set is split in two halves A and B, stratified by
  label x skin tone. The synthetic audit samples are drawn with A's conditions (same label x skin-tone mix,
  same count), so FID(synthetic, B) and FID(A, B) compare like with like at the same sample sizes; their ratio
  `fid_ratio` is 1 for a generator as good as a fresh draw of real images.
- `skin_tone_agreement`: the share of samples whose skin-tone group, by the pipeline's own ITA estimator on the
  decoded image, is the group asked for ("unknown" counts as wrong); with the asked x measured confusion.
- `label_auc`: AUC with which the reference network's diagnosis head separates samples asked as malignant from
  those asked as benign (its AUC on held-out real images is `reference_auc_heldout`, the ceiling).
- `memorized_fraction`: share of samples whose nearest real *training* neighbour is closer than the 5th
  percentile of held-out-real -> training nearest-neighbour distances (so ~0.05 for a generator that is as
  close to the training set as new real images are; a copying generator scores near 1).
- `skin_colour_plausible`: share of samples whose healthy skin (the ITA estimator's pixels) has a hue angle
  atan2(b*, a*) and chroma inside the range real held-out skin spans (its 1st-99th percentiles, widened by
  `HUE_MARGIN` and `CHROMA_MARGIN`); per asked skin-tone group too, and the gate reads the worst group. The ITA
  only reads L* and b*: a navy or purple "dark skin" can land in the asked group; this catches it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from PIL import Image

from pipelines.generation_report.fid import fid
from pipelines.skin_tone.ita import measure_skin_tone

MEMORIZATION_PERCENTILE = 5.0
GROUPS = ("A", "B", "C", "unknown")
WORKING_SIDE = 256
SKIN_RANGE_PERCENTILES = (1.0, 99.0)
HUE_MARGIN = 5.0  # degrees either side of the real range
CHROMA_MARGIN = 0.2  # relative, either side of the real range


@dataclass(frozen=True)
class SkinMeasurements:
    groups: np.ndarray  # the ITA estimator's group per image ("unknown" when too little skin)
    hue: np.ndarray  # degrees, atan2(b*, a*) of the median skin colour; NaN when unmeasurable
    chroma: np.ndarray  # sqrt(a*^2 + b*^2)


@dataclass(frozen=True)
class SkinColourRange:
    hue: tuple[float, float]
    chroma: tuple[float, float]

    @classmethod
    def of(cls, real: SkinMeasurements) -> SkinColourRange:
        hue, chroma = real.hue[~np.isnan(real.hue)], real.chroma[~np.isnan(real.chroma)]
        if not len(hue):
            raise ValueError("skin colour range: no real image has enough healthy skin to measure")
        h_lo, h_hi = np.percentile(hue, SKIN_RANGE_PERCENTILES)
        c_lo, c_hi = np.percentile(chroma, SKIN_RANGE_PERCENTILES)
        return cls((float(h_lo - HUE_MARGIN), float(h_hi + HUE_MARGIN)),
                   (float(c_lo * (1 - CHROMA_MARGIN)), float(c_hi * (1 + CHROMA_MARGIN))))

    def contains(self, measured: SkinMeasurements) -> np.ndarray:
        with np.errstate(invalid="ignore"):  # NaN (unmeasurable) compares False: implausible
            return ((measured.hue >= self.hue[0]) & (measured.hue <= self.hue[1])
                    & (measured.chroma >= self.chroma[0]) & (measured.chroma <= self.chroma[1]))


@dataclass(frozen=True)
class HeldOutHalves:
    a: np.ndarray  # row indices into the held-out set: the conditions the audit samples are drawn with
    b: np.ndarray  # the reference half every FID is measured against


def split_halves(attributes: pd.DataFrame, seed: int) -> HeldOutHalves:
    """Two halves of the held-out rows, each label x skin-tone cell split evenly (the odd one goes to A)."""
    rng = np.random.default_rng(seed)
    a, b = [], []
    for _, rows in attributes.groupby(["label", "skin_tone_group"], sort=True):
        index = rng.permutation(rows.index.to_numpy())
        half = (len(index) + 1) // 2
        a += index[:half].tolist()
        b += index[half:].tolist()
    return HeldOutHalves(np.array(sorted(a)), np.array(sorted(b)))


def measure_skin(images: np.ndarray, min_pixels: int) -> SkinMeasurements:
    """The ITA estimator on each image at its ~256-px working size (its masks' pixel sizes are set for the
    lesions stage's 256-px drafts), so small images are upsampled (bicubic) first."""
    groups, hue, chroma = [], [], []
    for image in images:
        if image.shape[0] < WORKING_SIDE:
            image = np.asarray(Image.fromarray(image).resize((WORKING_SIDE, WORKING_SIDE), Image.Resampling.BICUBIC))
        m = measure_skin_tone(image, min_pixels)
        groups.append(m.group)
        hue.append(float(np.degrees(np.arctan2(m.b_star, m.a_star))))
        chroma.append(float(np.hypot(m.a_star, m.b_star)))
    return SkinMeasurements(np.array(groups, dtype=object).astype(str), np.array(hue), np.array(chroma))


def skin_tone_agreement(measured: SkinMeasurements, asked: np.ndarray) -> tuple[float, dict]:
    """(share measured == asked, confusion {asked: {measured: count}}) with the pipeline's ITA estimator."""
    groups = measured.groups
    confusion = {a: {m: int(((asked == a) & (groups == m)).sum()) for m in GROUPS} for a in GROUPS[:3]}
    return (float((groups == asked).mean()) if len(asked) else float("nan")), confusion


def skin_colour_plausibility(measured: SkinMeasurements, asked: np.ndarray, real: SkinColourRange) -> dict:
    """Share of images whose skin colour lies in `real`'s range: overall, per asked group, and the worst group."""
    inside = real.contains(measured)
    by_group = {g: float(inside[asked == g].mean()) for g in GROUPS[:3] if (asked == g).any()}
    return {"skin_colour_plausible": float(inside.mean()) if len(inside) else float("nan"),
            "skin_colour_plausible_by_group": by_group,
            "skin_colour_plausible_worst_group": min(by_group.values()) if by_group else float("nan")}


def nearest_distances(queries: torch.Tensor, reference: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(distance, index) of each query's nearest reference row (Euclidean, in feature space)."""
    distances = torch.cdist(queries.double(), reference.double())
    best = distances.min(dim=1)
    return best.values.numpy(), best.indices.numpy()


def memorization(synthetic: torch.Tensor, heldout: torch.Tensor, train: torch.Tensor) -> dict:
    synthetic_d, synthetic_nn = nearest_distances(synthetic, train)
    heldout_d, _ = nearest_distances(heldout, train)
    threshold = float(np.percentile(heldout_d, MEMORIZATION_PERCENTILE))
    return {"memorized_fraction": float((synthetic_d < threshold).mean()), "threshold": threshold,
            "distances": synthetic_d, "neighbours": synthetic_nn,
            "median_nn_distance_synthetic": float(np.median(synthetic_d)),
            "median_nn_distance_heldout": float(np.median(heldout_d))}


def fid_scores(synthetic: torch.Tensor, heldout: torch.Tensor, halves: HeldOutHalves) -> dict:
    """FID(synthetic, B) averaged over disjoint |A|-sized chunks of the synthetic features, and FID(A, B)."""
    size = len(halves.a)
    b = heldout[halves.b]
    chunks = [synthetic[i:i + size] for i in range(0, synthetic.shape[0] - size + 1, size)]
    if not chunks:
        raise ValueError(f"FID: {synthetic.shape[0]} synthetic samples, fewer than half A's {size} held-out images")
    values = [fid(chunk, b) for chunk in chunks]
    reference = fid(heldout[halves.a], b)
    return {"fid_heldout": float(np.mean(values)), "fid_heldout_chunks": [round(v, 4) for v in values],
            "fid_real_reference": reference, "fid_ratio": float(np.mean(values)) / max(reference, 1e-12),
            "n_half_a": size, "n_half_b": len(halves.b)}


def gate(quality: dict, limits: dict[str, float], where: str):  # -> ValidationReport
    """The blocking `synthetic_quality` check: each measured value within its limit from params."""
    # imported here: pipelines.validation imports pipelines.config, which imports this package's params
    from pipelines.validation.report import ExpectationOutcome, ValidationReport

    rules = (("fid_ratio", "max_fid_ratio", lambda v, lim: v <= lim),
             ("skin_tone_agreement", "min_skin_tone_agreement", lambda v, lim: v >= lim),
             ("label_auc", "min_label_auc", lambda v, lim: v >= lim),
             ("memorized_fraction", "max_memorized_fraction", lambda v, lim: v <= lim),
             ("skin_colour_plausible_worst_group", "min_skin_colour_plausible", lambda v, lim: v >= lim))
    outcomes = []
    for key, limit_name, ok in rules:
        value, limit = quality.get(key), limits[limit_name]
        passed = value is not None and value == value and ok(value, limit)
        sign = "<=" if limit_name.startswith("max") else ">="
        outcomes.append(ExpectationOutcome(expectation=f"expect {key} {sign} {limit} ({limit_name})", column=key,
                                           success=bool(passed), observed=f"{value:.4f}" if value is not None
                                           else "missing"))
    shards = quality.get("shards")
    if shards is not None:  # the samples that really reach training: the cells the generation plan asked for
        value, limit = shards.get("skin_tone_agreement"), limits["min_skin_tone_agreement"]
        outcomes.append(ExpectationOutcome(
            expectation=f"expect shards skin_tone_agreement >= {limit} (min_skin_tone_agreement)",
            column="shards.skin_tone_agreement", success=bool(value is not None and value >= limit),
            observed=f"{value:.4f}" if value is not None else "missing"))
    return ValidationReport("synthetic_quality", where, outcomes)
