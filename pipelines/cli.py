"""`fairskin <stage>`: the command `dvc.yaml` runs for each stage (the same functions as the assets).

    fairskin lesions                 run a stage with params.yaml, then its validation (exit 1 if it fails)
    fairskin lesions --dry-run       print the resolved parameters and exit
    fairskin config --profile real   print the configuration with the real profile applied (pipelines/profiles.py)
                                     and what it changes; --write sets those values in params.yaml
    fairskin summary                 what the pipeline has produced so far, and where
    fairskin restore promoted        put a run record's artifacts back in the workspace (`dvc checkout` of
                                     its dvc.lock); also `latest`, a record name or a Dagster run id

Under `torchrun --nproc_per_node=N -m pipelines.cli <stage>` (or `accelerate launch -m pipelines.cli`)
the training stages run data-parallel; only rank 0 logs at INFO, writes reports and validates.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import yaml

from pipelines.config import load_params
from pipelines.profiles import PROFILES, profile_changes, still_to_set, write_profile
from pipelines.stages import STAGES
from pipelines.summary import print_summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fairskin", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=[*STAGES, "summary", "restore", "config"])
    parser.add_argument("record", nargs="?", default="promoted", help="restore: which run record")
    parser.add_argument("--params", default="params.yaml", type=Path)
    parser.add_argument("--dry-run", action="store_true", help="print the resolved parameters and exit")
    parser.add_argument("--profile", choices=sorted(PROFILES),
                        help="config / --dry-run: show the parameters with this profile applied")
    parser.add_argument("--write", action="store_true", help="config --profile: set its values in the params file")
    args = parser.parse_args(argv)
    if args.profile and not (args.dry_run or args.stage == "config"):
        parser.error("--profile goes with `config` or --dry-run: a stage runs what the params file says (the values "
                     f"DVC records); apply the profile first: fairskin config --profile {args.profile} --write")
    if args.write and not (args.stage == "config" and args.profile):
        parser.error("--write goes with `config --profile NAME`")
    rank = int(os.environ.get("RANK", "0"))  # set by torchrun / accelerate launch
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.stage == "config":
        return show_config(args.params, args.profile, args.write)
    params = load_params(args.params, args.profile)
    if args.stage == "summary":
        print_summary(params)
        return 0
    if args.stage == "restore":
        return restore(params, args.record)
    if args.dry_run:
        print(json.dumps(params.model_dump(mode="json"), indent=2))
        return 0
    stage = STAGES[args.stage]
    started = time.perf_counter()
    stage.run(params)
    logging.info("stage %s done in %.1f s", args.stage, time.perf_counter() - started)
    if stage.check is not None and rank == 0:
        report = stage.check(params)
        print(report.summary())
        if not report.success:
            print(f"stage {args.stage}: validation failed (see above); outputs are not committed by DVC",
                  file=sys.stderr)
            return 1
    return 0


def show_config(path: Path, profile: str | None, write: bool) -> int:
    """Print the resolved parameters (JSON, stdout); with a profile, what it changes and what is left to set."""
    raw = yaml.safe_load(path.read_text()) or {}
    changes = write_profile(path, profile) if write else profile_changes(raw, profile) if profile else []
    params = load_params(path, None if write else profile)
    if not write:
        print(json.dumps(params.model_dump(mode="json"), indent=2))
    notes = sys.stdout if write else sys.stderr  # keep stdout parseable JSON when printing the configuration
    if profile:
        verb = "set in" if write else "would change in"
        print(f"profile {profile}: {len(changes)} value(s) {verb} {path}", file=notes)
        for change in changes:
            print(f"  {change}", file=notes)
        for note in still_to_set(params, profile):
            print(f"  to do: {note}", file=notes)
    return 0


def restore(params, record: str) -> int:  # noqa: ANN001  (Params)
    from pipelines.run_records import find_record, restore_run_record

    restored = restore_run_record(Path.cwd(), find_record(params.path(params.run_records.out), record))
    if restored.status:
        print(f"restored {restored.record.name}, but `dvc status` is not clean (code changed since the record? "
              f"check out its git_commit first): {json.dumps(restored.status)}", file=sys.stderr)
        return 1
    print(f"restored {restored.record.name}: the workspace holds its artifacts (`dvc status` clean)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
