"""The run folder's `run.json`: what a run depends on, and whether an existing folder can be resumed.

`fingerprint` holds the parameters that change the result (all but EXECUTION_FIELDS) and hashes of the
training and validation items (key, label, content id); the rest records every parameter and the data counts.
A folder whose fingerprint differs loses its checkpoints and starts over; otherwise training resumes from
its latest checkpoint. The checkpoints live outside the run folder (training/checkpoint_policy.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

from training.checkpoint_policy import adopt_legacy_checkpoints
from training.downstream.checkpoints import latest_checkpoint
from training.downstream.dataset import ImageItem
from training.downstream.params import EXECUTION_FIELDS, DownstreamParams

log = logging.getLogger(__name__)


def _keys_hash(items: Sequence[ImageItem]) -> str:
    return hashlib.sha256("\n".join(f"{i.key}\t{i.label}\t{i.content}" for i in items).encode()).hexdigest()


def run_config(params: DownstreamParams, real: Sequence[ImageItem], synthetic: Sequence[ImageItem],
               validation: Sequence[ImageItem]) -> dict:
    """What a run's result depends on (`fingerprint`: the parameters less EXECUTION_FIELDS, and the data),
    plus every parameter; stored as `run.json`."""
    everything = params.model_dump(mode="json")
    fingerprint = {"params": {k: v for k, v in everything.items() if k not in EXECUTION_FIELDS},
                   "train_hash": _keys_hash([*real, *synthetic]), "validation_hash": _keys_hash(validation)}
    return {"fingerprint": fingerprint, "params": everything, "seed": params.seed, "max_steps": params.max_steps,
            "train_real": len(real), "train_synthetic": len(synthetic), "validation": len(validation)}


def start_or_resume(run_dir: Path, config: dict, checkpoints: Path) -> Path | None:
    """Write `run.json`; the latest checkpoint under `checkpoints` to resume from, or None (and no stale ones)."""
    adopt_legacy_checkpoints(run_dir / "checkpoints", checkpoints)
    run_file = run_dir / "run.json"
    previous = json.loads(run_file.read_text()) if run_file.is_file() else None
    run_dir.mkdir(parents=True, exist_ok=True)
    run_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    if previous is None or previous.get("fingerprint") != config["fingerprint"]:
        if previous is not None:
            log.warning("%s: run.json differs from this run's settings or data; starting over", run_dir)
        shutil.rmtree(checkpoints, ignore_errors=True)
        return None
    return latest_checkpoint(checkpoints)
