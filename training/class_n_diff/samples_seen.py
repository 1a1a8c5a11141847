"""Which latent samples each process trained on: `samples_seen/rank{r}.tsv` in the run folder (`record_samples`).

One line per sample and micro-batch, `step<TAB>micro_batch<TAB>key` (step 1-based, as in metrics.jsonl and the
checkpoint names), written by the process that used it. Under DDP the files of all ranks together hold each
step's global batch once; a resumed run first drops the lines written after the checkpoint it resumes from,
so every step appears once per rank whatever the interruptions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

FOLDER = "samples_seen"
HEADER = "step\tmicro_batch\tkey\n"


def samples_seen_path(run_dir: Path, rank: int) -> Path:
    return Path(run_dir) / FOLDER / f"rank{rank}.tsv"


class SamplesSeen:
    """Appends to one rank's file; lines after `start` (the step a resumed run starts from) are dropped on open."""

    def __init__(self, run_dir: Path, rank: int, start: int) -> None:
        self.path = samples_seen_path(run_dir, rank)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = [HEADER]
        if start and self.path.is_file():
            kept += [ln for ln in self.path.read_text().splitlines(keepends=True)[1:]
                     if ln.strip() and int(ln.split("\t", 1)[0]) <= start]
        self.path.write_text("".join(kept))

    def add(self, step: int, micro: int, keys: Sequence[str]) -> None:
        # opened per micro-batch: nothing to close when training stops, and a line is whole once written
        with self.path.open("a") as handle:
            handle.write("".join(f"{step}\t{micro}\t{key}\n" for key in keys))


def read_samples_seen(run_dir: Path) -> dict[int, dict[tuple[int, int], list[str]]]:
    """{rank: {(step, micro_batch): [keys in batch order]}} from the files of every rank in `run_dir`."""
    out: dict[int, dict[tuple[int, int], list[str]]] = {}
    for path in sorted((Path(run_dir) / FOLDER).glob("rank*.tsv")):
        rank = int(path.stem.removeprefix("rank"))
        lines = path.read_text().splitlines()
        if not lines or lines[0] + "\n" != HEADER:
            raise ValueError(f"{path}: expected the header {HEADER.strip()!r}, found {lines[:1]}")
        batches: dict[tuple[int, int], list[str]] = {}
        for number, line in enumerate(lines[1:], start=2):
            fields = line.split("\t")
            if len(fields) != 3:
                raise ValueError(f"{path}:{number}: expected step, micro_batch and key separated by tabs: {line!r}")
            batches.setdefault((int(fields[0]), int(fields[1])), []).append(fields[2])
        out[rank] = batches
    return out
