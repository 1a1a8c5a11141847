"""The Class-N-Diff training loop (METHOD.md §2–3): a DiT, optionally with the latent classifier trained jointly.

Runs unchanged on CPU, one GPU (bf16 autocast) or several under `accelerate launch` / `torchrun` (DDP through
`accelerate`). The batch of optimizer step s is a function of (seed, s) (`DataOrder`), and every random draw
of a step comes from a generator seeded by (seed, step, slice of the global batch), so a run resumed from a
checkpoint repeats the uninterrupted run, and N processes train as one process with N-step accumulation.
The run folder describes itself:

    config.json             resolved params, Table I settings, model configs, data shape, versions
    metrics.jsonl           one line per `log_every` steps, plus validation and sample-grid lines
    samples/step_*.png      sample grids (benign / malignant [× skin-tone group])
    dit_ema.safetensors + dit_config.json                 the model later stages load (training.dit.load_dit)
    dit.safetensors                                        the raw (non-EMA) final weights
    classifier.safetensors + classifier_config.json       the latent classifier (joint settings only)
    summary.json            steps, final losses, validation metrics, throughput
    samples_seen/rank*.tsv  with `record_samples`: the latent keys each process trained on, per step

Checkpoints (weights, EMA, optimizers, LR scheduler, RNG, step) are resumable state, not artifacts: they go to
`checkpoint_dir` (default `<parent>/checkpoints/<run name>`), outside the run folder that DVC caches and pushes,
every `checkpoint_every_minutes` of work and/or `checkpoint_every` steps; the latest `keep_checkpoints` stay
(training/checkpoint_policy.py).

Only the main process (rank 0) writes the shared files (each rank its own samples_seen file); every rank
returns a RunResult with its `rank` (the sample grid only on rank 0), so callers write reports on rank 0 only.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from tqdm.auto import tqdm

from training.checkpoint_policy import (
    CheckpointCadence,
    Clock,
    adopt_legacy_checkpoints,
    default_checkpoint_dir,
)
from training.class_n_diff.checkpoints import (
    TrainingState,
    checkpoint_name,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from training.class_n_diff.data_order import DataOrder, generator_for
from training.class_n_diff.evaluation import validate_classifier, validation_diffusion_loss
from training.class_n_diff.params import OPERATIONAL_FIELDS, TrainParams
from training.class_n_diff.presets import JointConfig, resolve_joint_config
from training.class_n_diff.sample_grid import Decode, save_sample_grid
from training.class_n_diff.samples_seen import FOLDER as SAMPLES_SEEN
from training.class_n_diff.samples_seen import SamplesSeen
from training.class_n_diff.step import StepNoise, joint_step
from training.diffusion.schedule import DiffusionSchedule
from training.dit import DiT, create_dit, save_dit
from training.latent_classifier import LatentClassifier, LatentClassifierConfig, save_latent_classifier
from training.latent_set import LatentSet

log = logging.getLogger(__name__)

SCHEDULE = DiffusionSchedule()  # DDPM, 1000 steps, linear betas 1e-4..0.02 (METHOD.md §2)


class TrainingDiverged(RuntimeError):
    """A non-finite loss: the message names the step and the last good checkpoint."""


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    config: Path
    metrics: Path
    checkpoints: Path  # the checkpoint folder (outside the run folder)
    dit_ema: Path
    dit_config: Path
    classifier: Path | None
    classifier_config: Path | None
    sample_grid: Path | None
    summary: dict
    rank: int = 0  # this process (accelerate's process_index); only rank 0 wrote the files
    world_size: int = 1
    samples_seen: Path | None = None  # the samples_seen folder, when params.record_samples


def make_accelerator(mixed_precision: str) -> Accelerator:
    cuda = torch.cuda.is_available()
    precision = ("bf16" if cuda else "no") if mixed_precision == "auto" else mixed_precision
    # cpu=True on a CPU-only machine: accelerate only sets up gloo DDP under torchrun when told it is on the CPU
    try:
        return Accelerator(mixed_precision=precision, cpu=not cuda)
    except ValueError:  # another run in this process fixed a different precision; keep the process group
        AcceleratorState._reset_state(reset_partial_state=False)
        return Accelerator(mixed_precision=precision, cpu=not cuda)


def check_latents(latents: LatentSet, conditions: tuple[str, ...], what: str) -> None:
    missing = [name for name in conditions if name not in latents.conditions]
    if missing:
        raise ValueError(f"{what} latent set has no condition(s) {missing}; the model is conditioned on "
                         f"{list(conditions)} (params conditions) and the set holds {sorted(latents.conditions)}")
    labels = latents.conditions["label"]
    if what == "training" and not bool(((labels == 0) | (labels == 1)).all()):
        bad = [latents.keys[i] for i in torch.nonzero((labels != 0) & (labels != 1)).flatten()[:5].tolist()]
        raise ValueError(f"training latent set: label must be 0 or 1 for every row; e.g. rows {bad}")


def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        ema_params = list(ema.parameters())
        torch._foreach_lerp_(ema_params, [p.detach().to(e.dtype) for p, e in zip(model.parameters(), ema_params,
                                                                                  strict=True)], 1.0 - decay)
        for e, b in zip(ema.buffers(), model.buffers(), strict=True):
            e.copy_(b)


def latent_fingerprint(latents: LatentSet) -> str:
    """sha256 of the training set's keys, latents and conditions: same images, same labels, same encodings."""
    digest = hashlib.sha256("\n".join(latents.keys).encode())
    for tensor in (latents.mean, *(latents.conditions[name] for name in sorted(latents.conditions))):
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def resolved_config(params: TrainParams, joint: JointConfig, dit: DiT, classifier: LatentClassifier | None,
                    latents: LatentSet, steps_per_epoch: int, world_size: int) -> dict:
    import accelerate
    import timm

    return {
        "params": params.model_dump(mode="json"),
        "joint": joint.to_dict(),
        "dit": dit.config.to_dict(),
        "classifier": None if classifier is None else classifier.config.to_dict(),
        "data": {"n_train": len(latents), "latent_shape": list(latents.mean.shape[1:]),
                 "posterior_std": latents.std is not None, "steps_per_epoch": steps_per_epoch,
                 "label_counts": torch.bincount(latents.conditions["label"], minlength=2).tolist(),
                 "fingerprint": latent_fingerprint(latents)},
        "world_size": world_size,
        "versions": {"torch": torch.__version__, "accelerate": accelerate.__version__, "timm": timm.__version__},
    }


def micro_batch_size(batch_size: int, grad_accum: int, world_size: int) -> int:
    """Latents per process and micro-batch: the global batch split evenly over processes x accumulation steps."""
    if batch_size % (grad_accum * world_size):
        raise ValueError(f"batch_size {batch_size} must divide by grad_accum {grad_accum} x {world_size} processes "
                         f"(each process takes batch_size / (grad_accum x processes) latents per micro-batch)")
    return batch_size // (grad_accum * world_size)


def resume_conflicts(stored: dict, current: dict) -> list[str]:
    """What differs between a run folder's config.json and this run, beyond reporting fields ([]: resumable)."""
    old = {k: v for k, v in stored["params"].items() if k not in OPERATIONAL_FIELDS}
    new = {k: v for k, v in current["params"].items() if k not in OPERATIONAL_FIELDS}
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if stored["data"]["n_train"] != current["data"]["n_train"]:
        changed.append("data.n_train")
    elif stored["data"].get("fingerprint", current["data"]["fingerprint"]) != current["data"]["fingerprint"]:
        changed.append("data.fingerprint")  # as many latents, but other images, labels or encodings
    if stored["world_size"] != current["world_size"]:
        changed.append("world_size")
    if _classifier_config(stored) != _classifier_config(current):
        changed.append("classifier")  # e.g. a checkpoint of the BatchNorm classifier (before GroupNorm)
    return changed


def _classifier_config(config: dict) -> LatentClassifierConfig | None:
    values = config.get("classifier")
    return None if values is None else LatentClassifierConfig.from_dict(values)


def truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines written after `step` (by the run that died after its last checkpoint)."""
    if path.is_file():
        lines = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln)["step"] <= step]
        path.write_text("".join(ln + "\n" for ln in lines))


class MetricWindow:
    """Sums of the step losses since the last log line (a tensor on the device: no sync per step)."""

    FIELDS = ("loss_total", "loss_diff", "mse", "vb", "loss_cls", "cls_steps", "x0_hat", "micro")

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.sums = torch.zeros(len(self.FIELDS), dtype=torch.float64, device=self.device)
        self.started, self.samples = time.perf_counter(), 0

    def add(self, result) -> None:  # noqa: ANN001  (a StepResult)
        cls = result.loss_cls if result.loss_cls is not None else torch.zeros((), device=self.device)
        values = torch.stack([result.loss_total.double(), result.loss_diff.double(), result.mse.double(),
                              result.vb.double(), cls.double().to(self.device)])
        flags = torch.tensor([float(result.loss_cls is not None), float(result.used_x0_hat), 1.0],
                             dtype=torch.float64, device=self.device)
        self.sums += torch.cat([values, flags])

    def line(self, accelerator: Accelerator, step: int, gamma: float, lr: float) -> dict:
        sums = accelerator.reduce(self.sums, reduction="sum").cpu().tolist()
        values = dict(zip(self.FIELDS, sums, strict=True))
        micro, cls_steps = max(values["micro"], 1.0), values["cls_steps"]
        elapsed = time.perf_counter() - self.started
        return {"step": step, "loss_total": values["loss_total"] / micro, "loss_diff": values["loss_diff"] / micro,
                "mse": values["mse"] / micro, "vb": values["vb"] / micro,
                "loss_cls": values["loss_cls"] / cls_steps if cls_steps else None,
                "x0_hat_fraction": values["x0_hat"] / micro, "gamma": gamma, "lr": lr,
                "samples_per_s": self.samples * accelerator.num_processes / elapsed if elapsed > 0 else None}


def train(train_set: LatentSet, out_dir: Path, params: TrainParams, *, val_set: LatentSet | None = None,
          decode: Decode | None = None, stop_at_step: int | None = None,
          resume: bool | Literal["if_compatible"] = True, checkpoint_dir: Path | None = None,
          clock: Clock = time.monotonic) -> RunResult:
    """Train (or continue) the run in `out_dir`; `stop_at_step` stops early after checkpointing (tests, preemption).

    `resume=True` continues from the latest checkpoint in `out_dir` when one exists (and refuses if the stored
    config differs in anything but reporting fields); `resume=False` clears `out_dir` and starts over;
    `resume="if_compatible"` continues when it can and otherwise starts over, saying why (the pipeline stage:
    new images or new params mean a new model, an interrupted run of the same config continues).
    Checkpoints go to `checkpoint_dir` (default: beside `out_dir`, never in it); `clock` times their cadence.
    """
    accelerator = make_accelerator(params.mixed_precision)
    threads = torch.get_num_threads()
    if accelerator.device.type == "cpu" and params.cpu_threads:
        torch.set_num_threads(params.cpu_threads)
    try:
        checkpoints = Path(checkpoint_dir) if checkpoint_dir is not None else default_checkpoint_dir(Path(out_dir))
        return _train(accelerator, train_set, Path(out_dir), params, val_set, decode, stop_at_step, resume,
                      checkpoints, clock)
    finally:
        torch.set_num_threads(threads)


def _train(accelerator: Accelerator, train_set: LatentSet, out_dir: Path, params: TrainParams,
           val_set: LatentSet | None, decode: Decode | None, stop_at_step: int | None,
           resume: bool | str, checkpoints: Path, clock: Clock) -> RunResult:
    device, rank, world = accelerator.device, accelerator.process_index, accelerator.num_processes
    micro_batch_size(params.batch_size, params.grad_accum, world)
    check_latents(train_set, params.conditions, "training")
    if val_set is not None:
        check_latents(val_set, params.conditions, "validation")
    channels, height, width = train_set.mean.shape[1:]
    steps_per_epoch = math.ceil(len(train_set) / params.batch_size)
    joint = resolve_joint_config(params, steps_per_epoch)

    torch.manual_seed(generator_for("init", params.seed).initial_seed())
    dit_module = create_dit(params.model, in_channels=channels, input_size=(height, width),
                            conditioning=params.conditioning, conditions=params.conditions,
                            class_dropout_prob=params.class_dropout_prob)
    classifier_module = None
    if joint.use_classifier:
        classifier_module = LatentClassifier(LatentClassifierConfig(
            in_channels=channels, backbone=params.classifier_backbone, head_hidden=params.classifier_head_hidden,
            pretrained_file=params.classifier_pretrained_file))
    ema = copy.deepcopy(dit_module).requires_grad_(False).eval().to(device)
    config = resolved_config(params, joint, dit_module, classifier_module, train_set, steps_per_epoch, world)

    dit = accelerator.prepare(dit_module)
    classifier = accelerator.prepare(classifier_module) if classifier_module is not None else None
    if params.compile:
        dit = torch.compile(dit)
        classifier = torch.compile(classifier) if classifier is not None else None
    fused = {"fused": True} if device.type in ("cuda", "cpu") else {"foreach": True}
    optimizer_dit = torch.optim.AdamW(dit_module.parameters(), lr=params.lr, weight_decay=params.weight_decay,
                                      **fused)
    optimizer_classifier = (torch.optim.AdamW(classifier_module.parameters(), lr=params.classifier_lr, **fused)
                            if classifier_module is not None else None)
    warmup = params.warmup_steps
    lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer_dit, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0)
    state = TrainingState(dit=dit_module, ema=ema, classifier=classifier_module, optimizer_dit=optimizer_dit,
                          optimizer_classifier=optimizer_classifier, lr_scheduler=lr_scheduler)

    metrics_path = out_dir / "metrics.jsonl"
    if accelerator.is_main_process:
        adopt_legacy_checkpoints(out_dir / "checkpoints", checkpoints)
    accelerator.wait_for_everyone()
    start = 0
    latest = latest_checkpoint(checkpoints) if resume else None
    if latest is not None and not (out_dir / "config.json").is_file():  # they belong to a run folder now gone
        log.warning("%s: no config.json beside checkpoints %s: starting over", out_dir, checkpoints)
        latest = None
    conflicts = resume_conflicts(json.loads((out_dir / "config.json").read_text()), config) if latest else []
    if conflicts and resume != "if_compatible":
        raise ValueError(f"{out_dir}: cannot resume, {conflicts} differ from {out_dir / 'config.json'}; "
                         f"use a new run folder or train(..., resume=False) to start over")
    if conflicts:
        log.warning("%s: %s changed since its checkpoints were written: starting over", out_dir, conflicts)
        latest = None
    if latest is not None:
        start = load_checkpoint(latest, state)
        log.info("resuming %s from %s (step %d)", out_dir, latest.name, start)
    elif accelerator.is_main_process:
        for target in (checkpoints, *(out_dir / name for name in ("samples", "metrics.jsonl", SAMPLES_SEEN))):
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    accelerator.wait_for_everyone()  # every rank has read config.json and its checkpoint before rank 0 rewrites
    if accelerator.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        truncate_metrics(metrics_path, start)
    accelerator.wait_for_everyone()
    samples_seen = SamplesSeen(out_dir, rank, start) if params.record_samples else None

    order = DataOrder(len(train_set), params.batch_size, params.seed)
    micro_scale = 1.0 / params.grad_accum
    end = params.steps if stop_at_step is None else min(params.steps, stop_at_step)
    window, last_log, grid = MetricWindow(device), {}, None
    last_good = latest
    cadence = CheckpointCadence(params.checkpoint_every, params.checkpoint_every_minutes, clock)

    def write_metrics(line: dict) -> None:
        if accelerator.is_main_process:
            with metrics_path.open("a") as handle:
                handle.write(json.dumps(line) + "\n")

    progress = tqdm(range(start, end), initial=start, total=params.steps, desc=f"train {out_dir.name}",
                    disable=not accelerator.is_main_process)
    for step in progress:
        active, gamma = joint.classifier_active(step), joint.gamma(step)
        for micro in range(params.grad_accum):
            # keyed by the slice of the global batch, so 2 processes x 1 micro-batch draw what 1 process x 2 does
            generator = generator_for("step", params.seed, step, micro * world + rank)
            index = order.micro_batch(step, micro, rank, params.grad_accum, world)
            if samples_seen is not None:
                samples_seen.add(step + 1, micro, [train_set.keys[i] for i in index.tolist()])
            draws = StepNoise.draw(torch.Size((len(index), channels, height, width)), SCHEDULE.num_timesteps,
                                   generator)
            z0 = train_set.latents(index, generator if params.sample_posterior else None).float().to(device)
            conditions = {name: train_set.conditions[name][index].to(device) for name in params.conditions}
            sync = micro == params.grad_accum - 1
            with contextlib.ExitStack() as stack:
                if not sync:
                    stack.enter_context(accelerator.no_sync(dit))
                    if classifier is not None:
                        stack.enter_context(accelerator.no_sync(classifier))
                result = joint_step(dit, classifier if active else None, SCHEDULE, z0, conditions, draws,
                                    gamma=gamma, lam=joint.lam, dit_scale=micro_scale,
                                    classifier_scale=micro_scale / joint.classifier_update_every,
                                    generator=generator, x0_hat_max_t=params.x0_hat_max_t)
                finite = torch.isfinite(result.backward.detach()).float()
                if world > 1:  # every rank stops together rather than leaving the others in an all-reduce
                    finite = accelerator.reduce(finite, reduction="sum") / world
                if float(finite) < 1.0:
                    raise TrainingDiverged(
                        f"{out_dir}: non-finite loss at step {step + 1} (micro-batch {micro}): "
                        f"loss_diff={float(result.loss_diff)}, loss_cls="
                        f"{None if result.loss_cls is None else float(result.loss_cls)}; last good checkpoint: "
                        f"{last_good if last_good is not None else 'none (no checkpoint written yet)'}")
                accelerator.backward(result.backward)
            window.add(result)
            window.samples += len(index)
        if params.grad_clip is not None:
            accelerator.clip_grad_norm_(dit.parameters(), params.grad_clip)
        optimizer_dit.step()
        optimizer_dit.zero_grad(set_to_none=True)
        lr_scheduler.step()
        if joint.classifier_steps_after(step):
            optimizer_classifier.step()
            optimizer_classifier.zero_grad(set_to_none=True)
        n = state.ema_updates
        decay = min(params.ema_decay, (1 + n) / (10 + n)) if params.ema_warmup else params.ema_decay
        ema_update(ema, dit_module, decay)
        state.ema_updates += 1

        done = step + 1
        if done % params.log_every == 0 or done == end:
            last_log = window.line(accelerator, done, gamma, lr_scheduler.get_last_lr()[0])
            write_metrics(last_log)
            cls = last_log["loss_cls"]
            progress.set_postfix(loss=f"{last_log['loss_diff']:.4f}", cls="-" if cls is None else f"{cls:.3f}",
                                 gamma=gamma)
            window.reset()
        if val_set is not None and (done % params.validate_every == 0 or done == params.steps):
            write_metrics(validation_line(done, dit_module, ema, classifier_module, val_set, params, device, active))
        if params.sample_every and done % params.sample_every == 0 and accelerator.is_main_process:
            grid = save_sample_grid(ema, SCHEDULE, params.conditions, (channels, height, width),
                                    out_dir / "samples" / f"step_{done:08d}.png", per_row=params.sample_per_row,
                                    steps=params.sample_steps, guidance=params.sample_guidance, seed=params.seed,
                                    device=device, decode=decode)
            write_metrics({"step": done, "kind": "sample_grid", **grid})
        if checkpoint_due(cadence, done, end, done % params.log_every == 0, accelerator):
            if accelerator.is_main_process:
                save_checkpoint(checkpoints, done, state, params.keep_checkpoints)
            accelerator.wait_for_everyone()
            cadence.saved()
            last_good = checkpoints / checkpoint_name(done)
    progress.close()
    return finish(out_dir, params, joint, state, config, end, last_log, grid, decode, accelerator, val_set,
                  checkpoints)


def checkpoint_due(cadence: CheckpointCadence, done: int, end: int, read_clock: bool, accelerator: Accelerator) -> bool:
    """At the end, on the step cadence, or (read only at log steps, `read_clock`) when the minutes are up. Every
    rank must agree, and their clocks differ: under DDP the time verdict is all-reduced (any rank due: all save)."""
    if done == end or cadence.steps_due(done):
        return True
    if not read_clock or cadence.every_minutes is None:
        return False
    due = cadence.time_due()
    if accelerator.num_processes > 1:
        flag = torch.tensor(float(due), device=accelerator.device)
        due = float(accelerator.reduce(flag, reduction="sum")) > 0
    return due


def validation_line(step: int, dit: DiT, ema: DiT, classifier: LatentClassifier | None, val_set: LatentSet,
                    params: TrainParams, device: torch.device, classifier_active: bool) -> dict:
    line = {"step": step, "kind": "validation",
            "diffusion": validation_diffusion_loss(dit, SCHEDULE, val_set, params.conditions, device, params.seed),
            "diffusion_ema": validation_diffusion_loss(ema, SCHEDULE, val_set, params.conditions, device,
                                                       params.seed)}
    if classifier is not None and classifier_active:
        line["classifier"] = validate_classifier(classifier, val_set, device)
    return line


def finish(out_dir: Path, params: TrainParams, joint: JointConfig, state: TrainingState, config: dict, end: int,
           last_log: dict, grid: dict | None, decode: Decode | None, accelerator: Accelerator,
           val_set: LatentSet | None, checkpoints: Path) -> RunResult:
    """Final weights, the last sample grid and summary.json (only when the run reached params.steps)."""
    completed = end >= params.steps
    files = {"dit_ema": out_dir / "dit_ema.safetensors", "dit_config": out_dir / "dit_config.json",
             "classifier": out_dir / "classifier.safetensors" if state.classifier is not None else None,
             "classifier_config": out_dir / "classifier_config.json" if state.classifier is not None else None}
    grid_path = None
    if completed and accelerator.is_main_process:
        save_dit(state.ema, files["dit_ema"], files["dit_config"])
        save_dit(state.dit, out_dir / "dit.safetensors")
        if state.classifier is not None:
            save_latent_classifier(state.classifier, files["classifier"], files["classifier_config"])
        if grid is None or not grid["path"].endswith(f"step_{end:08d}.png"):
            channels, height, width = config["data"]["latent_shape"]
            grid = save_sample_grid(state.ema, SCHEDULE, params.conditions, (channels, height, width),
                                    out_dir / "samples" / f"step_{end:08d}.png", per_row=params.sample_per_row,
                                    steps=params.sample_steps, guidance=params.sample_guidance, seed=params.seed,
                                    device=accelerator.device, decode=decode)
        grid_path = Path(grid["path"])
    validation = last_line(out_dir / "metrics.jsonl", "validation")
    summary = {"completed": completed, "steps": end, "preset": params.preset, "joint": joint.to_dict(),
               "final": last_line(out_dir / "metrics.jsonl", None) or last_log, "validation": validation,
               "sample_grid": grid,
               "n_train": config["data"]["n_train"], "n_val": None if val_set is None else len(val_set),
               "model": params.model, "conditioning": params.conditioning,
               "classifier_backbone": params.classifier_backbone if joint.use_classifier else None}
    if accelerator.is_main_process:
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    accelerator.wait_for_everyone()
    seen = out_dir / SAMPLES_SEEN if params.record_samples else None
    return RunResult(run_dir=out_dir, config=out_dir / "config.json", metrics=out_dir / "metrics.jsonl",
                     checkpoints=checkpoints, sample_grid=grid_path, summary=summary,
                     rank=accelerator.process_index, world_size=accelerator.num_processes, samples_seen=seen,
                     **files)


def last_line(metrics_path: Path, kind: str | None) -> dict | None:
    """The last metrics line of `kind` (None: a training-loss line)."""
    if not metrics_path.is_file():
        return None
    lines = [json.loads(ln) for ln in metrics_path.read_text().splitlines() if ln]
    matching = [ln for ln in lines if ln.get("kind") == kind]
    return matching[-1] if matching else None

