"""Train `class_n_diff_model` and `dit_baseline` at the same time, each in its own process.

On the CPU demo the two DiT runs are independent and each is fastest on one thread (tiny models: a second
thread mostly waits, TrainParams.cpu_threads), so two processes use both cores of a 2-core machine and the
pair takes as long as the slower run instead of their sum. Each process is the stage's own CLI
(`python -m pipelines.cli <stage>`), exactly what `dvc repro` runs one after the other; a failure of either is
reported with the tail of its log. On one GPU the two runs would compete for the device: run them in turn
(`class_n_diff.side_by_side: false`).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

TRAINING_STAGES = ("class_n_diff_model", "dit_baseline")


def train_side_by_side(stages: Sequence[str], params_file: Path | str, cwd: Path | str = ".") -> None:
    """Run each stage's CLI in its own process, all at once (their logs and progress bars interleave on this
    process's output); raise naming every stage that failed."""
    processes = {stage: subprocess.Popen([sys.executable, "-m", "pipelines.cli", stage, "--params", str(params_file)],
                                         cwd=cwd) for stage in stages}
    failures = [f"stage {stage} exited with {code} (its log is above)"
                for stage, code in ((s, p.wait()) for s, p in processes.items()) if code != 0]
    if failures:
        raise RuntimeError("; ".join(failures))
