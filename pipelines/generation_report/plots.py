"""The paper's figures for real vs synthetic: sample grids (Class-N-Diff Fig. 2) and distributions (Fig. 3).

Fig. 2 here: one panel per set, one row per label x skin-tone group, random images of that cell.
Fig. 3 here: (I) kernel density of pixel intensities per RGB channel, (II) the first two principal
components of the feature-network features, PCA fitted on the real features and applied to both sets, over
at most `plot_samples` random images per set (the paper samples 1000).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pipelines.atomic_files import atomic_path
from pipelines.generation_report.images import ImageSet

ROWS = [(label, group) for label in (0, 1) for group in ("A", "B", "C")]
LABEL_NAMES = {0: "benign", 1: "malignant"}
PIXELS_PER_CHANNEL = 50_000  # pixel values per channel fed to the KDE (a random subsample)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as temp:
        fig.savefig(temp, format="png", dpi=100)
    _pyplot().close(fig)
    return path


def sample_grid(sets: list[ImageSet], columns: int, rng: np.random.Generator, path: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(len(ROWS), len(sets) * columns, figsize=(1.1 * len(sets) * columns, 1.2 * len(ROWS)),
                             squeeze=False)
    for s, image_set in enumerate(sets):
        a = image_set.attributes
        for r, (label, group) in enumerate(ROWS):
            cell = np.flatnonzero((a["label"] == label).to_numpy() & (a["skin_tone_group"] == group).to_numpy())
            chosen = rng.choice(cell, size=min(columns, len(cell)), replace=False) if len(cell) else []
            images = image_set.load(sorted(chosen)) if len(chosen) else []
            for c in range(columns):
                ax = axes[r, s * columns + c]
                ax.set_xticks([])
                ax.set_yticks([])
                if c < len(images):
                    ax.imshow(images[c])
                else:  # fewer images than columns in this cell: leave the slot blank
                    for spine in ax.spines.values():
                        spine.set_visible(False)
                if c == 0:
                    ax.set_ylabel(f"{LABEL_NAMES[label]} {group}\n(n={len(cell)})", fontsize=7)
                if r == 0 and c == 0:
                    ax.set_title(image_set.name, fontsize=9, loc="left")
    fig.suptitle("Samples per class and skin-tone group (cf. Class-N-Diff Fig. 2)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def distributions(real_images: np.ndarray, synthetic_images: np.ndarray, real_features: torch.Tensor,
                  synthetic_features: torch.Tensor, rng: np.random.Generator, network: str, path: Path) -> Path:
    from scipy.stats import gaussian_kde
    from sklearn.decomposition import PCA

    plt = _pyplot()
    fig, (kde_ax, pca_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    grid = np.linspace(0, 255, 256)
    for channel, colour in enumerate(("tab:red", "tab:green", "tab:blue")):
        for images, style, name in ((real_images, "-", "real"), (synthetic_images, "--", "synthetic")):
            values = images[..., channel].reshape(-1).astype(np.float64)
            if len(values) > PIXELS_PER_CHANNEL:
                values = rng.choice(values, PIXELS_PER_CHANNEL, replace=False)
            if np.ptp(values) > 0:
                kde_ax.plot(grid, gaussian_kde(values)(grid), style, color=colour, label=f"{name} {'RGB'[channel]}")
    kde_ax.set_xlabel("pixel intensity")
    kde_ax.set_ylabel("density")
    kde_ax.set_title("(I) pixel intensity KDE per RGB channel", fontsize=9)
    kde_ax.legend(fontsize=7, ncol=2)
    if real_features.shape[0] >= 2 and real_features.shape[1] >= 2:
        pca = PCA(n_components=2).fit(real_features.numpy())
        for features, colour, name in ((real_features, "tab:blue", "real"), (synthetic_features, "tab:orange",
                                                                              "synthetic")):
            if features.shape[0]:
                points = pca.transform(features.numpy())
                pca_ax.scatter(points[:, 0], points[:, 1], s=6, alpha=0.5, color=colour,
                               label=f"{name} (n={features.shape[0]})")
        pca_ax.legend(fontsize=8)
    pca_ax.set_xlabel("PC 1")
    pca_ax.set_ylabel("PC 2")
    pca_ax.set_title(f"(II) first two PCs of the features\n{network}; PCA fitted on real", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
