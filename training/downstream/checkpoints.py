"""Resumable checkpoints of a downstream classifier run.

`<checkpoint folder>/step_%08d/` holds the weights (`model.safetensors`), the best weights so far
(`best_model.safetensors`, once an evaluation has happened), the optimizer state and the RNG states
(`torch.save`, read back with `weights_only=True`) and `state.json` (step, early-stopping state, history,
whether the run had finished). The folder is written under a temporary name and renamed, `state.json` last,
so a crash never leaves a checkpoint that looks whole. Resume always takes the latest complete one. The folder
lies outside the run folder, and only the latest `keep_checkpoints` stay (training/checkpoint_policy.py).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from training.checkpoint_policy import keep_latest
from training.downstream.model import model_weights
from training.rng_state import rng_state, set_rng_state

log = logging.getLogger(__name__)


@dataclass
class Checkpoint:
    step: int
    early_stopping: dict
    history: list[dict]
    finished: bool
    best_weights: dict[str, torch.Tensor] | None


def latest_checkpoint(folder: Path) -> Path | None:
    """The complete checkpoint (one with state.json) of the highest step under `folder`, or None."""
    if not folder.is_dir():
        return None
    complete = sorted(p for p in folder.glob("step_*") if (p / "state.json").is_file())
    return complete[-1] if complete else None


def save_checkpoint(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer, checkpoint: Checkpoint,
                    keep: int) -> Path:
    final = folder / f"step_{checkpoint.step:08d}"
    temp = folder / f".tmp-{final.name}"
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    save_file(model_weights(model), str(temp / "model.safetensors"))
    if checkpoint.best_weights is not None:
        save_file(checkpoint.best_weights, str(temp / "best_model.safetensors"))
    torch.save(optimizer.state_dict(), temp / "optimizer.pt")
    torch.save(rng_state(), temp / "rng.pt")
    (temp / "state.json").write_text(json.dumps({"step": checkpoint.step, "early_stopping": checkpoint.early_stopping,
                                                 "history": checkpoint.history, "finished": checkpoint.finished},
                                                indent=1))
    if final.exists():
        shutil.rmtree(final)
    os.replace(temp, final)
    keep_latest(folder, keep)
    log.debug("checkpoint %s", final)
    return final


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> Checkpoint:
    """Restore `model` and `optimizer` in place from checkpoint folder `path`, and the RNG states."""
    device = str(next(model.parameters()).device)
    meta = json.loads((path / "state.json").read_text())
    model.load_state_dict(load_file(str(path / "model.safetensors"), device=device))
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True, map_location=device))
    set_rng_state(torch.load(path / "rng.pt", weights_only=True))
    best = path / "best_model.safetensors"
    return Checkpoint(step=int(meta["step"]), early_stopping=meta["early_stopping"], history=meta["history"],
                      finished=bool(meta["finished"]), best_weights=load_file(str(best)) if best.is_file() else None)
