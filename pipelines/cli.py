"""`fairskin <stage>`: the command `dvc.yaml` runs for each stage (the same functions as the assets).

    fairskin lesions                 run a stage with params.yaml, then its validation (exit 1 if it fails)
    fairskin lesions --dry-run       print the resolved parameters and exit
    fairskin summary                 what the pipeline has produced so far, and where
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from pipelines.config import load_params
from pipelines.stages import STAGES
from pipelines.summary import print_summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fairskin", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=[*STAGES, "summary"])
    parser.add_argument("--params", default="params.yaml", type=Path)
    parser.add_argument("--dry-run", action="store_true", help="print the resolved parameters and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    params = load_params(args.params)
    if args.stage == "summary":
        print_summary(params)
        return 0
    if args.dry_run:
        print(json.dumps(params.model_dump(mode="json"), indent=2))
        return 0
    stage = STAGES[args.stage]
    started = time.perf_counter()
    stage.run(params)
    logging.info("stage %s done in %.1f s", args.stage, time.perf_counter() - started)
    if stage.check is not None:
        report = stage.check(params)
        print(report.summary())
        if not report.success:
            print(f"stage {args.stage}: validation failed (see above); outputs are not committed by DVC",
                  file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
