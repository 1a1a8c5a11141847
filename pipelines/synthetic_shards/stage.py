"""The `synthetic_shards` stage: generation plan -> sampled, filtered, decoded samples in WebDataset shards.

The shards are latent shards of split "synthetic" (`shards/synthetic-%06d.tar` + `shards/manifest.json` in
the format of training/latent_shards), so `shard_paths(shards, "synthetic")` and the latent readers take
them as they take the real ones.

Resumable: after each shard `synthetic-%06d.tar` its record `synthetic-%06d.json` (cell, draw range,
kept, dropped, sha256) is written; a rerun keeps every shard whose record and bytes agree and continues
from the first one missing. `run.json` holds the fingerprint of what the shards depend on (sampling params, shard
size, model version, latent shape, conditions, filter, plan); a different fingerprint starts over.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from pipelines.atomic_files import write_json
from pipelines.file_hashes import file_digest
from pipelines.synthetic_shards.generate import CellJob, CellSampler, Classifier, Decoder, cell_jobs
from pipelines.synthetic_shards.params import SyntheticShardsParams
from pipelines.synthetic_shards.shard_files import write_shard
from training.diffusion.schedule import DiffusionSchedule
from training.latent_shards.manifest import FORMAT, MANIFEST
from training.sampling.guidance import EpsModel

log = logging.getLogger(__name__)
SHARD_PATTERN = "synthetic-{:06d}"


@dataclass(frozen=True)
class SyntheticShardsOutputs:
    shards: Path  # folder of synthetic-%06d.tar, their .json records and manifest.json
    manifest: Path
    report: Path
    summary: dict


def output_paths(out_dir: Path) -> dict[str, Path]:
    return {"shards": out_dir / "shards", "manifest": out_dir / "shards" / MANIFEST,
            "report": out_dir / "report.json"}


def finished_records(shards: Path) -> list[dict]:
    """Records of the shards 0..n-1 that are complete; anything after the first gap is removed."""
    for stray in shards.glob(".*.tmp"):  # an atomic write cut by a hard kill
        stray.unlink()
    records: list[dict] = []
    while True:
        record_path = shards / (SHARD_PATTERN.format(len(records)) + ".json")
        if not record_path.is_file():
            break
        record = json.loads(record_path.read_text())
        tar = shards / record["shard"] if record["shard"] else None
        if tar is not None and (not tar.is_file() or file_digest(tar) != record["sha256"]):
            break
        records.append(record)
    for later in shards.glob("synthetic-*"):
        if int(later.name.split("-")[1].split(".")[0]) >= len(records):
            later.unlink()
    return records


def _start_or_resume(shards: Path, run_file: Path, fingerprint: dict) -> list[dict]:
    shards.mkdir(parents=True, exist_ok=True)
    previous = json.loads(run_file.read_text()) if run_file.is_file() else None
    if previous != fingerprint:
        if previous is not None or any(shards.glob("synthetic-*")):
            log.warning("%s: shards were made with other settings; starting over", shards)
        for old in [*shards.glob("synthetic-*"), shards / MANIFEST]:
            old.unlink(missing_ok=True)
        write_json(fingerprint, run_file)
        return []
    return finished_records(shards)


def run_synthetic_shards(params: SyntheticShardsParams, plan_path: Path, out_dir: Path, model: EpsModel,
                         decode: Decoder, model_version: str, latent_shape: Sequence[int],
                         classify: Classifier | None = None,
                         condition_names: Sequence[str] = ("label", "skin_tone"),
                         device: torch.device | str = "cpu",
                         schedule: DiffusionSchedule | None = None) -> SyntheticShardsOutputs:
    """Generate what `plan_path` asks for with the EMA `model`; `model_version` (e.g. the DVC hash of its
    weights) goes into every sample's provenance. `condition_names`: the conditions the model was trained
    with (its DiT config)."""
    plan = pd.read_parquet(plan_path)
    jobs = cell_jobs(plan, params.sampling.cap_factor)
    _check_conditions(jobs, condition_names, plan_path)
    paths = output_paths(out_dir)
    fingerprint = {"params": params.model_dump(mode="json"), "model_version": model_version,
                   "latent_shape": list(latent_shape), "condition_names": list(condition_names),
                   "filter": classify is not None and params.sampling.filter_threshold is not None,
                   "plan": {job.cell: job.to_generate for job in jobs}}
    records = _start_or_resume(paths["shards"], out_dir / "run.json", fingerprint)
    resumed = len(records)
    sampler = CellSampler(model=model, decode=decode, sampling=params.sampling, model_version=model_version,
                          latent_shape=tuple(latent_shape), condition_names=tuple(condition_names),
                          classify=classify, schedule=schedule or DiffusionSchedule(), device=device)
    started = time.perf_counter()
    generated = 0
    bar = tqdm(total=sum(j.to_generate for j in jobs), desc="synthetic samples", unit="sample",
               initial=sum(r["kept"] for r in records))
    for job in jobs:
        done = [r for r in records if r["cell"] == job.cell]
        kept = sum(r["kept"] for r in done)
        draw = max((r["draw_end"] for r in done), default=0)
        while kept < job.to_generate and draw < job.max_draws:
            capacity = min(params.samples_per_shard, job.to_generate - kept)
            samples, draw_end, dropped = sampler.fill_shard(job, draw, capacity)
            records.append(_write(paths["shards"], len(records), job, draw, draw_end, samples, dropped))
            kept, draw, generated = kept + len(samples), draw_end, generated + len(samples)
            bar.update(len(samples))
            log.info("%s: shard %d, %d/%d kept (%d dropped)", job.cell, len(records) - 1, kept, job.to_generate,
                     dropped)
    bar.close()
    seconds = time.perf_counter() - started
    summary = _summary(jobs, records, sampler, params, resumed, generated, seconds)
    write_json(_manifest(records, model_version, latent_shape), paths["manifest"])
    write_json(summary, paths["report"])
    return SyntheticShardsOutputs(summary=summary, **paths)


def _check_conditions(jobs: list[CellJob], condition_names: Sequence[str], plan_path: Path) -> None:
    """A cell's skin tone (and sex) must be a condition of the model, or its samples would be mislabelled."""
    fixed = {"label"} | ({"skin_tone"} if jobs else set()) | ({"sex"} if any(j.sex for j in jobs) else set())
    missing = sorted(fixed - set(condition_names))
    if missing:
        raise ValueError(f"{plan_path}: the plan's cells fix {missing}, but the model is conditioned only on "
                         f"{list(condition_names)}; train the DiT with these conditions or plan without them")


def _write(shards: Path, index: int, job: CellJob, draw_start: int, draw_end: int, samples: list,
           dropped: int) -> dict:
    name = SHARD_PATTERN.format(index)
    tar = write_shard(shards / f"{name}.tar", samples) if samples else None
    record = {"index": index, "shard": tar.name if tar else None, "sha256": file_digest(tar) if tar else None,
              "cell": job.cell, "draw_start": draw_start, "draw_end": draw_end, "kept": len(samples),
              "dropped": dropped, "keys": [s.key for s in samples]}
    write_json(record, shards / f"{name}.json")  # written last: its presence marks the shard finished
    return record


def _manifest(records: list[dict], model_version: str, latent_shape: Sequence[int]) -> dict:
    """The latent-shard manifest (training/latent_shards/manifest.py) for split "synthetic"."""
    shards = [{"shard": r["shard"], "split": "synthetic", "count": r["kept"], "sha256": r["sha256"],
               "cell": r["cell"]} for r in records if r["shard"]]
    return {"format": FORMAT, "splits": {"synthetic": sum(r["count"] for r in shards)}, "shards": shards,
            "encoder_id": None, "model_version": model_version, "latent_shape": list(latent_shape),
            "dtype": "float16", "count": sum(r["count"] for r in shards)}


def _summary(jobs: list[CellJob], records: list[dict], sampler: CellSampler, params: SyntheticShardsParams,
             resumed: int, generated: int, seconds: float) -> dict:
    cells = []
    for job in jobs:
        done = [r for r in records if r["cell"] == job.cell]
        kept, dropped = sum(r["kept"] for r in done), sum(r["dropped"] for r in done)
        cells.append({"cell": job.cell, "to_generate": job.to_generate, "kept": kept, "dropped": dropped,
                      "draws": kept + dropped, "cap": job.max_draws, "plan_met": kept >= job.to_generate})
    for cell in cells:
        if not cell["plan_met"]:
            log.warning("%s: plan not met (%d of %d kept after %d draws, the cap)", cell["cell"], cell["kept"],
                        cell["to_generate"], cell["draws"])
    table = pd.DataFrame(cells, columns=["cell", "to_generate", "kept", "dropped", "draws", "cap", "plan_met"])
    s = params.sampling
    return {
        "sampler": s.sampler, "steps": s.steps, "guidance": dict(s.guidance), "filter_threshold": s.filter_threshold,
        "kept": int(table["kept"].sum()), "dropped": int(table["dropped"].sum()),
        "plan_met": bool(table["plan_met"].all()), "shards": sum(1 for r in records if r["shard"]),
        "shards_resumed": resumed, "samples_generated_this_run": generated,
        "seconds_this_run": round(seconds, 3),
        "samples_per_second": round(generated / seconds, 4) if generated and seconds > 0 else None,
        "network_evaluations_per_sample": sampler.network_evaluations_per_sample or None,
        "single_sample_forwards_this_run": sampler.forward_passes,
        "cells": cells, "table_markdown": table.to_markdown(index=False),
    }
