"""PNG figures of the diffusion-classifier report: paper Figs. 2, 3, 4 and 9."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from training.diffusion_classifier.counterfactual import CounterfactualExplanation  # noqa: E402


def _save(figure: plt.Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return path


def plot_accuracy_vs_trials(rows: Sequence[dict[str, float]], path: Path) -> Path:
    """Fig. 2: accuracy and F1 vs N, majority vote against averaging; with `vote_share_auc` / `error_gap_auc`
    columns also the AUC vs N of their rankings (the vote share is the majority's, the error gap the average's)."""
    n = [r["n_trials"] for r in rows]
    metrics = ["accuracy", "f1", *(["auc"] if rows and "vote_share_auc" in rows[0] else [])]
    columns = {"auc": {"majority": "vote_share_auc", "average": "error_gap_auc"}}
    figure, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.5))
    for ax, metric in zip(axes, metrics, strict=True):
        for mode, style in (("majority", "-o"), ("average", "--s")):
            column = columns.get(metric, {}).get(mode, f"{mode}_{metric}")
            label = {"majority": "majority (vote share)", "average": "average (error gap)"}[mode]
            ax.plot(n, [r[column] for r in rows], style, label=label if metric == "auc" else mode, markersize=4)
        ax.set_xscale("log")
        ax.set_xlabel("trials N")
        ax.set_ylabel(metric if metric != "auc" else "ROC AUC (malignant)")
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(figure, path)


def plot_auc_vs_evaluations(curves: dict[str, Sequence[dict[str, float]]], path: Path,
                            reference: float | None = None, tolerance: float | None = None) -> Path:
    """AUC (mean over trial seeds, +- one SD) vs network evaluations per image, one line per curve; with
    `reference`, the full vote's AUC and the band `tolerance` below it."""
    figure, ax = plt.subplots(figsize=(6, 4))
    for name, rows in curves.items():
        x = [r["network_evals"] for r in rows]
        y = np.array([r["auc"] for r in rows])
        sd = np.array([r.get("auc_sd", 0.0) for r in rows])
        ax.plot(x, y, "-o", markersize=3, label=name)
        ax.fill_between(x, y - sd, y + sd, alpha=0.15)
    if reference is not None:
        ax.axhline(reference, color="black", linewidth=1, label="full vote (1002 evaluations)")
        if tolerance is not None:
            ax.axhspan(reference - tolerance, reference, color="grey", alpha=0.2)
    ax.set_xscale("log")
    ax.set_xlabel("network evaluations per image")
    ax.set_ylabel("test ROC AUC")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(figure, path)


def plot_retention_curve(rows: Sequence[dict[str, float]], path: Path) -> Path:
    """Fig. 3: accuracy on the retained set vs fraction of most uncertain predictions removed (and, with a
    `balanced_accuracy` column, the balanced accuracy: on imbalanced data the plain one rewards one class)."""
    figure, ax = plt.subplots(figsize=(4.5, 3.5))
    ax.plot([100 * r["removed_fraction"] for r in rows], [r["accuracy"] for r in rows], "-o", markersize=4,
            label="accuracy")
    if rows and "balanced_accuracy" in rows[0]:
        ax.plot([100 * r["removed_fraction"] for r in rows], [r["balanced_accuracy"] for r in rows], "--s",
                markersize=4, label="balanced accuracy")
        ax.legend()
    ax.set_xlabel("most uncertain predictions removed (%)")
    ax.set_ylabel("accuracy on the retained set")
    ax.grid(alpha=0.3)
    return _save(figure, path)


def plot_confidence_by_outcome(groups: dict[str, np.ndarray], path: Path,
                               ylabel: str = "confidence (vote share)") -> Path:
    """Fig. 9: box plots of the confidence of TP, TN, FP and FN."""
    names = [name for name in ("TP", "TN", "FP", "FN") if name in groups]
    figure, ax = plt.subplots(figsize=(4.5, 3.5))
    ax.boxplot([groups[name] if len(groups[name]) else [np.nan] for name in names])
    ax.set_xticks(range(1, len(names) + 1), [f"{name}\n(n={len(groups[name])})" for name in names])
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")
    return _save(figure, path)


def _displayable(image: torch.Tensor, value_range: tuple[float, float]) -> np.ndarray:
    """(c, H, W) -> (H, W, 3) in [0, 1]; other than 3 channels -> the channel mean as grey."""
    low, high = value_range
    image = ((image.float() - low) / (high - low)).clamp(0, 1)
    if image.shape[0] != 3:
        image = image.mean(dim=0, keepdim=True).expand(3, -1, -1)
    return image.permute(1, 2, 0).cpu().numpy()


def render_counterfactual_gallery(explanation: CounterfactualExplanation, path: Path,
                                  titles: Sequence[str] | None = None,
                                  value_range: tuple[float, float] = (-1.0, 1.0)) -> Path:
    """Fig. 4 layout: one row per image -> input, factual, counterfactual, |difference| heat map."""
    n = explanation.input.shape[0]
    figure, axes = plt.subplots(n, 4, figsize=(8, 2.1 * n), squeeze=False)
    vmax = float(explanation.heatmap.max()) or 1.0
    for i in range(n):
        f, c = int(explanation.factual_class[i]), int(explanation.counterfactual_class[i])
        panels = [(_displayable(explanation.input[i], value_range), titles[i] if titles else "input"),
                  (_displayable(explanation.factual[i], value_range), f"factual (class {f})"),
                  (_displayable(explanation.counterfactual[i], value_range), f"counterfactual (class {c})")]
        for ax, (image, title) in zip(axes[i, :3], panels, strict=True):
            ax.imshow(image)
            ax.set_title(title, fontsize=8)
        axes[i, 3].imshow(explanation.heatmap[i].cpu().numpy(), cmap="inferno", vmin=0.0, vmax=vmax)
        axes[i, 3].set_title("|difference|", fontsize=8)
        for ax in axes[i]:
            ax.axis("off")
    return _save(figure, path)
