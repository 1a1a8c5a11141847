"""Pictures of the quality audit: samples per asked cell, and the synthetic samples closest to a training image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.generation_report.plots import LABEL_NAMES, ROWS, _pyplot, _save


def grid_by_cell(images: np.ndarray, asked: pd.DataFrame, path: Path, title: str) -> Path:
    """One row per asked label x skin-tone cell (benign A ... malignant C), its images left to right."""
    columns = max(1, max(int(((asked["label"] == lab) & (asked["skin_tone_group"] == g)).sum()) for lab, g in ROWS))
    plt = _pyplot()
    fig, axes = plt.subplots(len(ROWS), columns, figsize=(1.1 * columns, 1.2 * len(ROWS)), squeeze=False)
    for r, (label, group) in enumerate(ROWS):
        cell = np.flatnonzero(((asked["label"] == label) & (asked["skin_tone_group"] == group)).to_numpy())
        for c in range(columns):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(cell):
                ax.imshow(images[cell[c]])
            if c == 0:
                ax.set_ylabel(f"asked\n{LABEL_NAMES[label]} {group}", fontsize=7)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def closest_pairs(synthetic: np.ndarray, train: np.ndarray, distances: np.ndarray, neighbours: np.ndarray,
                  path: Path, threshold: float, n: int = 8) -> Path:
    """The n synthetic samples nearest to a training image (feature distance), each above its neighbour."""
    order = np.argsort(distances)[:n]
    plt = _pyplot()
    fig, axes = plt.subplots(2, len(order), figsize=(1.3 * len(order), 3.0), squeeze=False)
    for c, i in enumerate(order):
        for r, image in enumerate((synthetic[i], train[neighbours[i]])):
            ax = axes[r, c]
            ax.imshow(image)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, c].set_title(f"d={distances[i]:.2f}", fontsize=7,
                             color="red" if distances[i] < threshold else "black")
    axes[0, 0].set_ylabel("synthetic", fontsize=8)
    axes[1, 0].set_ylabel("nearest\ntraining", fontsize=8)
    fig.suptitle(f"closest synthetic / training pairs (red: below the memorisation threshold {threshold:.2f})",
                 fontsize=8)
    return _save(fig, path)
