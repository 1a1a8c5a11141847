"""The experiment's picture: per skin-tone group, each arm's sensitivity and AUC (seed mean, paired-bootstrap CI)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.atomic_files import atomic_path
from pipelines.fairness.plots import _pyplot

GROUP_LABELS = {"all": "all", "A": "FST I-II", "B": "FST III-IV", "C": "FST V-VI"}


def plot_experiment(experiment: dict, test_set: str, path: Path) -> Path:
    entry = experiment["test_sets"][test_set]
    groups = [g for g in GROUP_LABELS if g in entry]
    arms = list(experiment["arms"])
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.8), sharey=True)
    width = 0.8 / len(arms)
    x = np.arange(len(groups))
    for ax, metric in zip(axes, ("sensitivity", "auc"), strict=True):
        for k, arm in enumerate(arms):
            values = [entry[g]["arms"][arm][metric] for g in groups]
            point = np.array([v["value"] for v in values], dtype=float)
            low = np.array([np.nan if v["ci"][0] is None else v["ci"][0] for v in values], dtype=float)
            high = np.array([np.nan if v["ci"][1] is None else v["ci"][1] for v in values], dtype=float)
            errors = np.vstack([np.nan_to_num(point - low), np.nan_to_num(high - point)])
            ax.bar(x + (k - (len(arms) - 1) / 2) * width, np.nan_to_num(point), width, yerr=errors, capsize=3,
                   label=arm)
        ax.set_xticks(x, [f"{GROUP_LABELS[g]}\n({entry[g]['positives']} mal.)" for g in groups], fontsize=8)
        ax.set_title(metric)
        ax.set_ylim(0, 1.05)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower left")
    fig.suptitle(f"{test_set}: arms per skin-tone group ({experiment['seeds']} seeds, "
                 f"{int(100 * experiment['confidence'])} % CI over images and seeds)", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as temp:
        fig.savefig(temp, format="png", dpi=100)
    plt.close(fig)
    return path
