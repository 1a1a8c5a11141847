"""Where resumable checkpoints live, when a training loop writes one, and how many stay.

Checkpoints are resumable state, not artifacts: at the real profile one of Class-N-Diff is ~7 GB (DiT, EMA,
AdamW moments, classifier), so they stay out of the run folder, which is a DVC out that run records push
every night. A stage puts them under `<data_root>/<checkpoints>/<run folder name>` (params `checkpoints`,
gitignored, as the latent cache); a caller that names no folder gets one beside the run folder, never in it.

The cadence is minutes of work (`checkpoint_every_minutes`: what a crash may cost), not a step count that is
tiny at 200k steps; a step cadence remains for tests and for runs that want checkpoints at fixed steps. Only
the latest `keep` complete checkpoints stay.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

Clock = Callable[[], float]  # seconds, monotonic (time.monotonic; tests inject their own)


def default_checkpoint_dir(run_dir: Path) -> Path:
    """`<parent>/checkpoints/<run name>`: beside the run folder, so never inside what DVC caches with it."""
    return Path(run_dir).parent / "checkpoints" / Path(run_dir).name


@dataclass
class CheckpointCadence:
    """A checkpoint is due every `every_steps` optimizer steps and every `every_minutes` of work since the
    last one (or since the loop started); either may be None. The loop checkpoints at its end regardless."""

    every_steps: int | None = None
    every_minutes: float | None = None
    clock: Clock = time.monotonic
    _since: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self._since = self.clock()

    def steps_due(self, step: int) -> bool:
        return self.every_steps is not None and step % self.every_steps == 0

    def time_due(self) -> bool:
        return self.every_minutes is not None and self.clock() - self._since >= self.every_minutes * 60

    def due(self, step: int) -> bool:
        return self.steps_due(step) or self.time_due()

    def saved(self) -> None:
        """Call after writing a checkpoint: the minutes count again from now."""
        self._since = self.clock()


def keep_latest(folder: Path, keep: int) -> None:
    """Delete all but the `keep` highest-step `step_*` checkpoints under `folder`."""
    for old in sorted(p for p in Path(folder).glob("step_*") if p.is_dir())[:-keep]:
        shutil.rmtree(old)


def adopt_legacy_checkpoints(legacy: Path, folder: Path) -> None:
    """Checkpoints that an older version wrote inside the run folder (`legacy`): move them to `folder` when it
    has none (so an interrupted run still resumes), else delete them; either way they leave the DVC out."""
    if not legacy.is_dir() or legacy.resolve() == folder.resolve():
        return
    if folder.is_dir() and any(folder.glob("step_*")):
        shutil.rmtree(legacy)
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(folder, ignore_errors=True)
    shutil.move(str(legacy), str(folder))
    log.info("moved checkpoints %s -> %s (checkpoints are no longer kept in the run folder)", legacy, folder)
