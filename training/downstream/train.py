"""Train one downstream classifier: seeded, resumable, early-stopped on validation AUC.

Determinism: the initial weights come from `torch.manual_seed(seed)`, the batches and each image's
augmentation are functions of (seed, step) (data_order.py), and the global RNG is re-seeded from
(seed, step) before every step (dropout, stochastic depth). On CPU a run is therefore reproducible bit for
bit, and one resumed from its latest checkpoint ends with the weights of an uninterrupted run.

The run folder describes itself: `run.json` (parameters, data counts, a fingerprint that decides whether
the folder's checkpoints can be resumed: run_folder.py), `result.json` (steps, best step,
early stop, and per evaluation: step, mean training loss since the previous one, val AUC), and the final
`model.safetensors` + `config.json` holding the best-validation-AUC weights. Its checkpoints (resumable
state, not artifacts) go to `checkpoint_dir`, outside it (training/checkpoint_policy.py).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from training.checkpoint_policy import CheckpointCadence, Clock, default_checkpoint_dir
from training.downstream.augment import AugmentationSettings
from training.downstream.checkpoints import Checkpoint, load_checkpoint, save_checkpoint
from training.downstream.data_order import TrainingOrder, derived_seed
from training.downstream.dataset import ImageDataset, ImageItem
from training.downstream.early_stopping import EarlyStopping
from training.downstream.evaluate import predict_scores, roc_auc
from training.downstream.execution import intra_op_threads, resolve_device
from training.downstream.model import (
    ClassifierConfig,
    classifier_config,
    create_backbone,
    model_weights,
    save_classifier,
)
from training.downstream.params import DownstreamParams
from training.downstream.run_folder import run_config, start_or_resume

log = logging.getLogger(__name__)
Evaluator = Callable[[nn.Module, int], float]  # (model, steps done) -> validation AUC


@dataclass(frozen=True)
class TrainResult:
    weights: Path  # best-validation-AUC weights (safetensors, config in the metadata)
    config: ClassifierConfig
    steps: int  # optimizer steps taken
    best_step: int | None
    best_val_auc: float
    stopped_early: bool
    history: list[dict]
    resumed_from: int | None  # step of the checkpoint this call resumed from

    def summary(self) -> dict:
        return {"steps": self.steps, "best_step": self.best_step,
                "best_val_auc": None if math.isnan(self.best_val_auc) else round(self.best_val_auc, 6),
                "stopped_early": self.stopped_early, "early_stop_step": self.steps if self.stopped_early else None,
                "resumed_from": self.resumed_from, "evaluations": len(self.history)}


class StepBatches(Sampler):
    """Batches of (item index, augmentation seed) for steps [start, stop), in step order."""

    def __init__(self, order: TrainingOrder, start: int, stop: int) -> None:
        self.order, self.start, self.stop = order, start, stop

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.stop):
            batch = self.order.batch(step)
            yield [(index, self.order.augmentation_seed(step, slot)) for slot, index in enumerate(batch)]

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


def augmentation_settings(params: DownstreamParams) -> AugmentationSettings | None:
    if not params.augment:
        return None
    return AugmentationSettings(rotation_degrees=params.rotation_degrees, flip_probability=params.flip_probability,
                                blur_kernel=params.blur_kernel, blur_sigma=params.blur_sigma,
                                blur_probability=params.blur_probability)


def train_classifier(params: DownstreamParams, real: Sequence[ImageItem], synthetic: Sequence[ImageItem],
                     validation: Sequence[ImageItem], run_dir: Path, evaluate: Evaluator | None = None,
                     name: str = "classifier", checkpoint_dir: Path | None = None,
                     clock: Clock = time.monotonic) -> TrainResult:
    """Train on `real` + `synthetic` (mixed per params.synthetic_mixing), early-stopped on the validation AUC
    (`evaluate`, default: AUC of `validation`); resumes from the latest checkpoint in `checkpoint_dir` (default:
    beside `run_dir`, never in it); `clock` times the checkpoint cadence."""
    checkpoints = Path(checkpoint_dir) if checkpoint_dir is not None else default_checkpoint_dir(Path(run_dir))
    with intra_op_threads(params.torch_threads):
        return _train(params, real, synthetic, validation, Path(run_dir), evaluate, name, checkpoints, clock)


def _train(params: DownstreamParams, real: Sequence[ImageItem], synthetic: Sequence[ImageItem],
           validation: Sequence[ImageItem], run_dir: Path, evaluate: Evaluator | None, name: str,
           checkpoints: Path, clock: Clock) -> TrainResult:
    device = resolve_device(params.device)
    labels = {item.label for item in validation}
    if evaluate is None and labels != {0, 1}:
        raise ValueError(f"{name}: the validation set holds labels {sorted(labels)}; early stopping on validation "
                         f"AUC needs malignant and benign images")
    checkpoint_path = start_or_resume(run_dir, run_config(params, real, synthetic, validation), checkpoints)

    torch.manual_seed(params.seed)
    model = create_backbone(params.backbone, params.pretrained_file).to(device)
    config = classifier_config(model, params.backbone, params.image_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    train_set = ImageDataset([*real, *synthetic], params.image_size, config.mean, config.std,
                             augmentation_settings(params), cache=params.cache_images)
    val_set = ImageDataset(validation, params.image_size, config.mean, config.std, cache=params.cache_images)
    if evaluate is None:
        def evaluate(m: nn.Module, _: int) -> float:
            return roc_auc(val_set.labels.numpy(), predict_scores(m, val_set, params.eval_batch_size, device))

    stopping = EarlyStopping(params.patience, params.min_delta)
    history, best_weights, start, finished = [], None, 0, False
    if checkpoint_path is not None:
        state = load_checkpoint(checkpoint_path, model, optimizer)
        stopping, history = EarlyStopping.from_state(state.early_stopping), state.history
        best_weights, start, finished = state.best_weights, state.step, state.finished
        log.info("%s: resumed from %s (step %d%s)", name, checkpoint_path, start, ", finished" if finished else "")
    resumed_from = start if checkpoint_path is not None else None

    step = start
    if not finished:
        order = TrainingOrder(len(real), len(synthetic), params.batch_size, params.seed,
                              params.synthetic_per_batch() if params.synthetic_mixing == "fraction" else None)
        loader = DataLoader(train_set, batch_sampler=StepBatches(order, start, params.max_steps),
                            num_workers=params.num_workers, persistent_workers=False)
        model.train()
        losses: list[float] = []
        progress = tqdm(total=params.max_steps, initial=start, desc=f"train {name}", unit="step", leave=False)
        cadence = CheckpointCadence(params.checkpoint_every, params.checkpoint_every_minutes, clock)
        for step, (images, targets) in enumerate(loader, start=start + 1):  # `step` = optimizer steps done
            torch.manual_seed(derived_seed("step", params.seed, step))
            logits = model(images.to(device)).reshape(-1)
            loss = F.binary_cross_entropy_with_logits(logits.float(), targets.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            progress.update(1)
            if step % params.eval_every == 0 or step == params.max_steps:
                auc = float(evaluate(model, step))
                model.train()
                if stopping.update(step, auc):
                    best_weights = model_weights(model)
                history.append({"step": step, "train_loss": sum(losses) / len(losses), "val_auc": auc})
                progress.set_postfix(val_auc=f"{auc:.4f}", best=f"{stopping.best_auc:.4f}")
                log.info("%s: step %d, loss %.4f, val AUC %.4f (best %.4f at step %s)", name, step,
                         history[-1]["train_loss"], auc, stopping.best_auc, stopping.best_step)
                losses = []
            finished = stopping.should_stop or step == params.max_steps
            if finished or cadence.due(step):
                save_checkpoint(checkpoints, model, optimizer,
                                Checkpoint(step, stopping.state_dict(), history, finished, best_weights),
                                params.keep_checkpoints)
                cadence.saved()
            if finished:
                break
        progress.close()

    final = best_weights if best_weights is not None else model_weights(model)
    weights = save_classifier(final, config, run_dir / "model.safetensors", run_dir / "config.json")
    result = TrainResult(weights=weights, config=config, steps=step, best_step=stopping.best_step,
                         best_val_auc=stopping.best_auc if stopping.best_step is not None else math.nan,
                         stopped_early=stopping.should_stop, history=history, resumed_from=resumed_from)
    (run_dir / "result.json").write_text(json.dumps({**result.summary(), "history": history}, indent=2) + "\n")
    if stopping.should_stop:
        log.info("%s: early stop at step %d (no val-AUC gain in %d evaluations; best %.4f at step %d)", name, step,
                 params.patience, stopping.best_auc, stopping.best_step)
    return result
