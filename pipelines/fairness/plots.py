"""The report's figures: per-group AUC and sensitivity bars with CI whiskers, ROC curves per skin tone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.atomic_files import atomic_path
from pipelines.fairness.subgroups import SKIN_TONE_GROUPS, SKIN_TONE_NAMES


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_group_bars(groups: pd.DataFrame, classifiers: list[str], order: list[str], title: str, path: Path) -> Path:
    """Two panels (AUC, sensitivity): one bar per classifier in each group, whiskers = the 95 % CI.
    `groups` holds the rows of one test set and one attribute (columns of metrics.score_groups)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(max(6.0, 1.6 * len(order) * 2), 3.8), sharey=True)
    width = 0.8 / max(1, len(classifiers))
    x = np.arange(len(order))
    for ax, metric, name in zip(axes, ("auc", "sensitivity"), ("AUC", "sensitivity"), strict=True):
        for k, classifier in enumerate(classifiers):
            rows = groups[groups["classifier"] == classifier].set_index("group").reindex(order)
            value = rows[metric].to_numpy(dtype=float)
            low, high = rows[f"{metric}_low"].to_numpy(dtype=float), rows[f"{metric}_high"].to_numpy(dtype=float)
            errors = np.vstack([np.nan_to_num(value - low), np.nan_to_num(high - value)])
            positions = x + (k - (len(classifiers) - 1) / 2) * width
            ax.bar(positions, np.nan_to_num(value), width, yerr=errors, capsize=3, label=classifier)
            for position in positions[np.isnan(value)]:  # undefined (e.g. no malignant in the group)
                ax.text(position, 0.02, "n/a", ha="center", fontsize=7, rotation=90)
        ax.set_xticks(x, [_group_label(g, groups, order) for g in order], fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_title(name)
    axes[0].set_ylabel("value (whiskers: 95 % bootstrap CI)")
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: never hides a bar
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path, plt)


def plot_roc_by_skin_tone(frame: pd.DataFrame, classifiers: list[str], thresholds: dict[str, float], title: str,
                          path: Path) -> Path:
    """One panel per classifier, one ROC curve per skin-tone group with both classes; the dot is the
    operating point at the classifier's validation threshold."""
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(classifiers), figsize=(3.6 * len(classifiers), 3.6), squeeze=False)
    for ax, classifier in zip(axes[0], classifiers, strict=True):
        rows = frame[frame["classifier"] == classifier]
        for group in SKIN_TONE_GROUPS:
            members = rows[rows["skin_tone_group"] == group]
            labels, scores = members["label"].to_numpy(), members["score"].to_numpy()
            if len(np.unique(labels)) < 2:  # empty or one class: no curve
                continue
            fpr, tpr, _ = roc_curve(labels, scores)
            line = ax.plot(fpr, tpr, label=f"{SKIN_TONE_NAMES[group]} AUC {roc_auc_score(labels, scores):.3f} "
                                           f"(n={len(labels)})")[0]
            called = scores >= thresholds[classifier]
            ax.plot(called[labels == 0].mean(), called[labels == 1].mean(), "o", color=line.get_color())
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        ax.set_title(classifier, fontsize=9)
        ax.set_xlabel("false-positive rate")
        ax.legend(fontsize=7, loc="lower right")
    axes[0][0].set_ylabel("sensitivity")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path, plt)


def _group_label(group: str, groups: pd.DataFrame, order: list[str]) -> str:
    name = SKIN_TONE_NAMES.get(group, group) if set(order) <= {*SKIN_TONE_GROUPS, "unknown"} else group
    sizes = groups[groups["group"] == group]
    n = int(sizes["n"].max()) if len(sizes) else 0
    positives = int(sizes["positives"].max()) if len(sizes) else 0
    return f"{name}\nn={n}, mal={positives}"


def _save(fig, path: Path, plt) -> Path:
    # No "Software" entry in the PNG metadata, so the bytes do not change with matplotlib's version.
    with atomic_path(Path(path)) as temp:
        fig.savefig(temp, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return Path(path)
