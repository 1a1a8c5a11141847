"""The `skin_tone` stage: how far to trust the ITA estimate, per image source.

The `lesions` stage already measured every image (one decode serves hash, size and ITA); this stage
scores the estimate against what is known: the true Fitzpatrick types of a truth file (the demo
generator writes one) and, on real data, the images whose source states a Fitzpatrick type (ISIC
Archive `fitzpatrick_skin_type`). Outputs: agreement and a confusion matrix (true group x estimated
group), the ITA distribution per true group as a plot, and the ITA distribution per source.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipelines.atomic_files import atomic_path, write_json
from pipelines.config import Params
from pipelines.skin_tone.categories import fitzpatrick_group

GROUPS = ["A", "B", "C"]


@dataclass(frozen=True)
class SkinToneOutputs:
    report: Path
    confusion_plot: Path
    summary: dict


def output_paths(params: Params) -> dict[str, Path]:
    out = params.path(params.skin_tone.out)
    return {"report": out / "report.json", "confusion_plot": out / "ita_by_group.png"}


def truth_table(params: Params, lesions: pd.DataFrame) -> pd.DataFrame:
    """(image_path, true_group, truth) for every lesion with a known true type."""
    known = lesions.loc[lesions["fitzpatrick"].notna(), ["image_path", "fitzpatrick"]].assign(truth="label")
    frames = [known]
    if params.skin_tone.truth:
        path = params.path(params.skin_tone.truth)
        truth = pd.read_csv(path, dtype={"image_path": str})
        prefix = path.parent.relative_to(Path(params.data_root)).as_posix() if not Path(
            params.skin_tone.truth).is_absolute() else path.parent.as_posix()
        truth["image_path"] = prefix + "/" + truth["image_path"]
        frames.append(truth[["image_path", "fitzpatrick"]].assign(truth=path.name))
    table = pd.concat(frames, ignore_index=True).drop_duplicates("image_path", keep="last")
    table["true_group"] = [fitzpatrick_group(int(f)) for f in table["fitzpatrick"]]
    return table.drop(columns="fitzpatrick")


def agreement(lesions: pd.DataFrame, truth: pd.DataFrame) -> dict:
    """Confusion matrix of true vs estimated group and the share that agree (unknown estimates count wrong)."""
    joined = lesions.merge(truth, on="image_path", how="inner")
    if joined.empty:
        return {"n": 0, "agreement": None, "confusion": {}}
    confusion = pd.crosstab(joined["true_group"], joined["fst_estimate"]).reindex(
        index=GROUPS, columns=[*GROUPS, "unknown"], fill_value=0)
    return {
        "n": len(joined),
        "agreement": round(float((joined["true_group"] == joined["fst_estimate"]).mean()), 6),
        "confusion": {g: {k: int(v) for k, v in row.items()} for g, row in confusion.iterrows()},
        "by_truth_source": joined.groupby("truth").apply(
            lambda f: round(float((f["true_group"] == f["fst_estimate"]).mean()), 6), include_groups=False
        ).to_dict(),
    }


def run_skin_tone(params: Params) -> SkinToneOutputs:
    from pipelines.lesions.stage import output_paths as lesions_paths

    lesions = pd.read_parquet(lesions_paths(params)["lesions"])
    truth = truth_table(params, lesions)
    summary = {
        "thresholds": "Kinyanjui: I > 55, II 41-55, III 28-41, IV 19-28, V 10-19, VI <= 10 (degrees, ITA via atan2)",
        "estimate_vs_truth": agreement(lesions, truth),
        "ita_by_source": _ita_by_source(lesions),
        "chardon": lesions["chardon"].value_counts().sort_index().to_dict(),
        "skin_tone_source": lesions["skin_tone_source"].value_counts().sort_index().to_dict(),
    }
    paths = output_paths(params)
    write_json(summary, paths["report"])
    _plot(lesions.merge(truth, on="image_path", how="left"), paths["confusion_plot"])
    return SkinToneOutputs(summary=summary, **paths)


def _ita_by_source(lesions: pd.DataFrame) -> dict:
    first = lesions.assign(source=lesions["sources"].str.split("|").str[0].str.split(":").str[0])
    stats = first.groupby("source")["ita"].describe()[["count", "mean", "50%", "min", "max"]].round(3)
    return {s: row.to_dict() for s, row in stats.iterrows()}


def _plot(frame: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    groups = [("A", "FST I-II"), ("B", "FST III-IV"), ("C", "FST V-VI")]
    for group, name in groups:
        values = frame.loc[frame["true_group"] == group, "ita"].dropna()
        if len(values):
            ax.hist(values, bins=30, range=(-60, 90), alpha=0.5, label=f"true {name} (n={len(values)})")
    unlabelled = frame.loc[frame["true_group"].isna(), "ita"].dropna()
    if len(unlabelled):
        ax.hist(unlabelled, bins=30, range=(-60, 90), histtype="step", color="k", label="no known type")
    for threshold in (41, 19):  # the group boundaries of the Kinyanjui thresholds (A|B, B|C)
        ax.axvline(threshold, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("ITA of the healthy skin (degrees)")
    ax.set_ylabel("images")
    ax.set_title("Estimated skin tone vs known Fitzpatrick group")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as temp:
        fig.savefig(temp, format="png", dpi=100)
    plt.close(fig)
