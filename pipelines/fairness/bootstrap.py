"""Seeded, vectorised bootstrap of a group's metrics (percentile confidence intervals).

Resampling is within the group and stratified by label: each resample draws P positives from the
group's P positives and N negatives from its N negatives, with replacement (as pROC's stratified
bootstrap of AUC). So a resample of a group that has both classes always has both classes and every
metric is defined in every resample; a group with one class has NaN AUC/sensitivity (or specificity)
in the point estimate and in every resample, so its interval for those metrics is NaN too.

Each (classifier, test set, attribute, group) has its own random stream, derived from the seed and a
CRC32 of its key, so an interval does not change when other classifiers or groups are added.
"""

from __future__ import annotations

import zlib

import numpy as np

from pipelines.fairness.confusion import METRICS, RankedGroup, metrics_from_counts

_CHUNK_ELEMENTS = 4_000_000  # resamples x images drawn at once: bounds memory at ~32 MB of indices


def group_rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(key.encode())]))


def bootstrap_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float, samples: int,
                      rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Every metric of METRICS on `samples` stratified resamples: name -> (samples,) array."""
    group = RankedGroup.of(labels, scores)
    called = group.values >= threshold
    if samples == 0:
        return {name: np.empty(0) for name in METRICS}
    per_chunk = max(1, _CHUNK_ELEMENTS // max(1, len(group.positive_at) + len(group.negative_at)))
    chunks = []
    for start in range(0, samples, per_chunk):
        size = min(per_chunk, samples - start)
        positive = _resampled_counts(group.positive_at, len(group.values), size, rng)
        negative = _resampled_counts(group.negative_at, len(group.values), size, rng)
        chunks.append(metrics_from_counts(positive, negative, called))
    return {name: np.concatenate([chunk[name] for chunk in chunks]) for name in METRICS}


def _resampled_counts(at: np.ndarray, distinct: int, samples: int, rng: np.random.Generator) -> np.ndarray:
    """(samples, distinct) counts per distinct score of `len(at)` draws with replacement from `at`."""
    if len(at) == 0:
        return np.zeros((samples, distinct), dtype=np.int64)
    drawn = at[rng.integers(0, len(at), size=(samples, len(at)))]
    offsets = (np.arange(samples) * distinct)[:, None]
    return np.bincount((drawn + offsets).ravel(), minlength=samples * distinct).reshape(samples, distinct)


def percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """The (lower, upper) percentile interval of the finite values; NaN when there are none."""
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)
