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
    lines += ["", "Browse the asset graph, checks and metadata:  make ui   (http://127.0.0.1:3000)",
              "Re-run as DVC stages:                          .venv/bin/dvc repro", ""]
    print("\n".join(lines))
