"""What the pipeline produced and where: printed at the end of `make demo`."""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.config import Params


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def print_summary(params: Params) -> None:
    from pipelines.external_sets.stage import output_paths as external_paths
    from pipelines.lesions.stage import output_paths as lesions_paths
    from pipelines.skin_tone.report import output_paths as skin_tone_paths

    lines = ["", "=== fairskin: what was produced ==="]
    lesions = lesions_paths(params)
    report = _load(lesions["report"])
    if report:
        lines += [
            f"lesions table     {lesions['lesions']}  ({report['kept']} images; label rate {report['label_rate']:.3f};"
            f" splits {report['splits']})",
            f"rejects table     {lesions['rejects']}  ({report['rejected']} rows: {report['rejects_by_reason']})",
            f"accounting        {report['rows_in']} rows in = {report['kept']} kept + "
            f"{report['merged_duplicates']} merged duplicates + {report['rejected']} rejected",
            f"label x skin tone {report['label_by_skin_tone']}",
            f"sample grid       {lesions['sample_grid']}",
        ]
    tone = _load(skin_tone_paths(params)["report"])
    if tone:
        agreement = tone["estimate_vs_truth"]
        lines += [f"skin tone         {skin_tone_paths(params)['report']}  (estimate vs known type: agreement "
                  f"{agreement['agreement']} on {agreement['n']} images)",
                  f"skin tone plot    {skin_tone_paths(params)['confusion_plot']}"]
    external = _load(external_paths(params)["report"])
    if external:
        lines.append(f"external sets     {external_paths(params)['table']}  ({external['images']})")
    lines += _generation_lines(params) + _experiment_lines(params)
    lines += ["", "Browse the asset graph, checks and metadata:  make ui   (http://127.0.0.1:3000)",
              "Re-run as DVC stages:                          .venv/bin/dvc repro", ""]
    print("\n".join(lines))


def _generation_lines(params: Params) -> list[str]:
    folder = params.path(params.generation_report.out)
    quality = _load(folder / "quality.json")
    if not quality:
        return []
    verdict = "passed" if quality["passed"] else "FAILED: " + "; ".join(quality["failures"])
    lines = ["", f"synthetic quality {folder / 'quality.json'}  (gate synthetic_quality {verdict})"]
    for name, m in quality["models"].items():
        lines.append(f"  {name:<14} held-out FID {m['fid_heldout']:.2f} (real-vs-real {m['fid_real_reference']:.2f}, "
                     f"ratio {m['fid_ratio']:.1f}), skin-tone agreement {m['skin_tone_agreement']:.2f}, label AUC "
                     f"{m['label_auc']:.2f}, memorised {m['memorized_fraction']:.3f}  ({m['n_samples']} samples)")
    lines += [f"sample grids      {folder / 'sample_grid.png'}, {folder / 'class_n_diff_grid_by_cell.png'}",
              f"closest pairs     {folder / 'class_n_diff_closest_pairs.png'}"]
    return lines


def _experiment_lines(params: Params) -> list[str]:
    folder = params.path("fairness_report")
    experiment = _load(folder / "experiment.json")
    if not experiment:
        return []
    lines = ["", "the experiment    " + experiment["headline"]]
    for test_set, groups in experiment["test_sets"].items():
        for group in ("A", "B", "C"):
            if group not in groups:
                continue
            arms = groups[group]["arms"]
            cells = ", ".join(f"{arm} {v['sensitivity']['value']:.2f} [{v['sensitivity']['ci'][0]:.2f}, "
                              f"{v['sensitivity']['ci'][1]:.2f}]" for arm, v in arms.items()
                              if v["sensitivity"]["ci"][0] is not None)
            lines.append(f"  {test_set:<10} {group} sensitivity ({groups[group]['positives']} malignant): {cells}")
    lines += [f"fairness report   {folder / 'report.html'}  (experiment plots: {folder / 'plots'}/experiment__*.png)"]
    return lines
