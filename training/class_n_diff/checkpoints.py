"""Checkpoints of a training run: everything needed to continue it exactly.

`<checkpoint folder>/step_%08d/` holds the DiT, its EMA and the classifier as safetensors, the classifier's pending
accumulated gradients (when its optimizer steps every k > 1 steps and the checkpoint falls between two),
both optimizers' states and the RNG states (`torch.save`, read back with `weights_only=True`), the LR
scheduler state and the step (`state.json`). The folder is written under a temporary name and renamed,
and `state.json` is written last, so a crash never leaves a checkpoint that looks whole. The folder lies
outside the run folder, and only the latest `keep_checkpoints` stay (training/checkpoint_policy.py).
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
from training.rng_state import rng_state, set_rng_state

log = logging.getLogger(__name__)


@dataclass
class TrainingState:
    dit: nn.Module  # unwrapped modules (no DDP / compile wrappers)
    ema: nn.Module
    classifier: nn.Module | None
    optimizer_dit: torch.optim.Optimizer
    optimizer_classifier: torch.optim.Optimizer | None
    lr_scheduler: torch.optim.lr_scheduler.LRScheduler
    ema_updates: int = 0


def _weights(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


def latest_checkpoint(folder: Path) -> Path | None:
    """The complete checkpoint (one with state.json) of the highest step under `folder`, or None."""
    if not folder.is_dir():
        return None
    complete = sorted(p for p in folder.glob("step_*") if (p / "state.json").is_file())
    return complete[-1] if complete else None


def save_checkpoint(folder: Path, step: int, state: TrainingState, keep: int) -> Path:
    final = folder / checkpoint_name(step)
    temp = folder / f".tmp-{checkpoint_name(step)}"
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    save_file(_weights(state.dit), str(temp / "dit.safetensors"))
    save_file(_weights(state.ema), str(temp / "dit_ema.safetensors"))
    torch.save(state.optimizer_dit.state_dict(), temp / "optimizer_dit.pt")
    (temp / "lr_scheduler.json").write_text(json.dumps(state.lr_scheduler.state_dict()))
    if state.classifier is not None:
        save_file(_weights(state.classifier), str(temp / "classifier.safetensors"))
        torch.save(state.optimizer_classifier.state_dict(), temp / "optimizer_classifier.pt")
        pending = {name: p.grad.detach().cpu().contiguous() for name, p in state.classifier.named_parameters()
                   if p.grad is not None}
        if pending:
            save_file(pending, str(temp / "classifier_grad.safetensors"))
    torch.save(rng_state(), temp / "rng.pt")
    (temp / "state.json").write_text(json.dumps({"step": step, "ema_updates": state.ema_updates}))
    if final.exists():
        shutil.rmtree(final)
    os.replace(temp, final)
    keep_latest(folder, keep)
    log.info("checkpoint %s", final)
    return final


def load_checkpoint(path: Path, state: TrainingState) -> int:
    """Restore `state` in place from checkpoint folder `path`; returns the step it was taken after."""
    def device_of(module: nn.Module) -> torch.device:
        return next(module.parameters()).device

    meta = json.loads((path / "state.json").read_text())
    state.dit.load_state_dict(load_file(str(path / "dit.safetensors"), device=str(device_of(state.dit))))
    state.ema.load_state_dict(load_file(str(path / "dit_ema.safetensors"), device=str(device_of(state.ema))))
    state.optimizer_dit.load_state_dict(torch.load(path / "optimizer_dit.pt", weights_only=True))
    state.lr_scheduler.load_state_dict(json.loads((path / "lr_scheduler.json").read_text()))
    if state.classifier is not None:
        if not (path / "classifier.safetensors").is_file():
            raise FileNotFoundError(f"{path}: no classifier.safetensors, but this run trains a classifier "
                                    f"(was the checkpoint written by a DiT-only run?)")
        device = str(device_of(state.classifier))
        state.classifier.load_state_dict(load_file(str(path / "classifier.safetensors"), device=device))
        state.optimizer_classifier.load_state_dict(torch.load(path / "optimizer_classifier.pt", weights_only=True))
        grads = (load_file(str(path / "classifier_grad.safetensors"), device=device)
                 if (path / "classifier_grad.safetensors").is_file() else {})
        for name, p in state.classifier.named_parameters():
            p.grad = grads.get(name)
    set_rng_state(torch.load(path / "rng.pt", weights_only=True))
    state.ema_updates = int(meta["ema_updates"])
    return int(meta["step"])
