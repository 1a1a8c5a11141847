"""Loss curves of a run from its metrics.jsonl: a PNG for the UI and a CSV for `dvc plots`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLUMNS = ("step", "loss_total", "loss_diff", "mse", "vb", "loss_cls", "gamma")


def read_metrics(path: Path) -> tuple[list[dict], list[dict]]:
    """(training-loss lines, validation lines) of a metrics.jsonl."""
    lines = [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]
    return [ln for ln in lines if "kind" not in ln], [ln for ln in lines if ln.get("kind") == "validation"]


def write_loss_csv(metrics: Path, path: Path) -> Path:
    train, _ = read_metrics(metrics)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for line in train:
            writer.writerow({k: ("" if line.get(k) is None else line[k]) for k in COLUMNS})
    return path


def plot_loss_curve(metrics: Path, path: Path, title: str) -> Path:
    """Left: diffusion loss (MSE + L_vb) and validation MSE; right: classifier BCE, γ and validation AUC."""
    train, validation = read_metrics(metrics)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    steps = [ln["step"] for ln in train]
    left.plot(steps, [ln["loss_diff"] for ln in train], label="train L_diff")
    left.plot(steps, [ln["mse"] for ln in train], label="train MSE(ε)", alpha=0.7)
    val = [(v["step"], v["diffusion"]["mse"]) for v in validation if v["diffusion"]["mse"] is not None]
    if val:
        left.plot(*zip(*val, strict=True), "o-", label="val MSE(ε)")
    left.set_yscale("log")
    left.set_xlabel("step")
    left.set_title("diffusion")
    left.legend()
    cls = [(ln["step"], ln["loss_cls"]) for ln in train if ln.get("loss_cls") is not None]
    if cls:
        right.plot(*zip(*cls, strict=True), label="train BCE")
        right.plot(steps, [ln["gamma"] for ln in train], "--", label="γ")
        auc = [(v["step"], v["classifier"]["auc"]) for v in validation
               if v.get("classifier") and v["classifier"]["auc"] is not None]
        if auc:
            right.plot(*zip(*auc, strict=True), "o-", label="val AUC")
        right.legend()
    else:
        right.text(0.5, 0.5, "no classifier (DiT alone, setting 1)", ha="center", va="center")
    right.set_xlabel("step")
    right.set_title("latent classifier")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)
    return path
