"""The `class_n_diff_model` and `dit_baseline` stages: latent shards (or a LatentSet) -> a trained run folder.

`run_class_n_diff` trains the DiT with the latent classifier (Table I setting of `params.preset`);
`run_dit_baseline` trains the same DiT alone (setting 1) for comparison. Both continue from the latest
checkpoint (kept outside `out_dir`, in `checkpoint_dir`) when `out_dir` holds a run of the same configuration,
and start over when the images or the params changed (a nightly run after new images arrived trains a new
model). The run folder is `training.train`'s (what later stages read: dit_ema, classifier, config.json,
summary.json; no checkpoints: they are resumable state, not artifacts); the report folder, beside it
because DVC forbids a metrics or plots file inside an out, holds

    final_metrics.json flat final numbers, for `dvc metrics`
    loss_curve.csv     the training-loss lines, for `dvc plots` (x = step)
    loss_curve.png     diffusion and classifier losses, validation MSE/AUC, γ
    sample_grid.png    a copy of the last sample grid of the run

Under `torchrun` / `accelerate launch` every process calls the stage; all train, only rank 0 writes the
report folder and summary.json, the other ranks return their outputs (`rank` > 0) without touching a file.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipelines.atomic_files import atomic_path, write_json
from pipelines.class_n_diff.loss_curve import plot_loss_curve, write_loss_csv
from training.class_n_diff.params import TrainParams
from training.class_n_diff.sample_grid import Decode
from training.latent_set import LatentSet
from training.train import RunResult, train

log = logging.getLogger(__name__)

Latents = LatentSet | Path | str | Sequence[Path | str]
JOINT_FIELDS = ("lam", "gamma_initial", "gamma_step", "gamma_period", "gamma_max", "classifier_start",
                "classifier_update_every")


@dataclass(frozen=True)
class ClassNDiffOutputs:
    run_dir: Path
    dit_ema: Path  # training.dit.load_dit(dit_ema) loads the model with no other file
    dit_config: Path
    classifier: Path | None  # training.latent_classifier.load_latent_classifier; None for the baseline
    classifier_config: Path | None
    config: Path
    metrics: Path  # metrics.jsonl
    report_dir: Path
    loss_curve: Path  # report_dir/loss_curve.png
    loss_csv: Path  # report_dir/loss_curve.csv
    final_metrics: Path  # report_dir/final_metrics.json
    sample_grid: Path | None  # report_dir/sample_grid.png (None when the run left no grid)
    summary: dict
    rank: int = 0  # the process that returned these outputs; only rank 0 wrote the report files


def load_latents(latents: Latents, split: str) -> LatentSet:
    """A LatentSet as is; a latent-shards folder (with manifest.json) -> its `split`; shard paths -> their samples."""
    from training.latent_shards.manifest import MANIFEST, shard_paths
    from training.latent_shards.read import read_latent_set

    if isinstance(latents, LatentSet):
        return latents
    if isinstance(latents, (str, Path)):
        folder = Path(latents)
        if not (folder / MANIFEST).is_file():
            raise FileNotFoundError(f"{folder}: not a latent-shards folder (no {MANIFEST}); pass the folder the "
                                    f"latent_shards stage wrote, a list of shard paths or a LatentSet")
        return read_latent_set(shard_paths(folder, split))
    return read_latent_set([Path(p) for p in latents])


def codec_decoder(codec_spec: Path) -> Decode:
    """The decode function of the codec the `vae` stage described in `codec.json` (latents -> images in [-1, 1])."""
    from training.vae import CodecSpec, open_codec

    return open_codec(CodecSpec.read(Path(codec_spec))).decode


def flat_metrics(summary: dict) -> dict:
    final = summary.get("final") or {}
    validation = summary.get("validation") or {}
    classifier = validation.get("classifier") or {}
    diffusion = validation.get("diffusion") or {}
    out = {"steps": summary["steps"], "loss_diff": final.get("loss_diff"), "mse": final.get("mse"),
           "vb": final.get("vb"), "loss_cls": final.get("loss_cls"), "val_mse": diffusion.get("mse"),
           "val_mse_ema": (validation.get("diffusion_ema") or {}).get("mse")}
    out |= {f"val_{k}": classifier.get(k) for k in ("accuracy", "auc", "sensitivity", "specificity")}
    return out


def run_class_n_diff(latents: Latents, out_dir: Path, report_dir: Path, params: TrainParams, *,
                     val_latents: Latents | None = None, codec_spec: Path | None = None, decode: Decode | None = None,
                     resume: bool | str = "if_compatible", train_split: str = "train",
                     val_split: str = "val", checkpoint_dir: Path | None = None) -> ClassNDiffOutputs:
    """Train (or finish training) the run in `out_dir`; write its metrics, loss curves and sample grid to `report_dir`.

    `latents`: a LatentSet, shard paths, or the latent-shards folder (then `train_split`, and `val_split` for
    validation unless `val_latents` is given). Sample grids are decoded with `decode`, else with the codec of
    `codec_spec` (the vae stage's codec.json), else saved as latent-channel grids. Checkpoints go to
    `checkpoint_dir` (default: beside `out_dir`), outside the run folder that DVC caches.
    """
    out_dir, report_dir = Path(out_dir), Path(report_dir)
    if report_dir.resolve() == out_dir.resolve() or report_dir.resolve().is_relative_to(out_dir.resolve()):
        raise ValueError(f"report folder {report_dir} lies in the run folder {out_dir}: DVC cannot track metrics "
                         f"inside an out; use a folder beside it (params class_n_diff.report_out)")
    train_set = load_latents(latents, train_split)
    if val_latents is None and isinstance(latents, (str, Path)):
        val_latents = latents
    val_set = load_latents(val_latents, val_split) if val_latents is not None else None
    if decode is None and codec_spec is not None:
        decode = codec_decoder(codec_spec)
    log.info("training %s (%s, %s) on %d latents %s", out_dir, params.preset, params.model, len(train_set),
             tuple(train_set.mean.shape[1:]))
    result = train(train_set, out_dir, params, val_set=val_set, decode=decode, resume=resume,
                   checkpoint_dir=checkpoint_dir)
    return _outputs(result, params, report_dir)


def run_dit_baseline(latents: Latents, out_dir: Path, report_dir: Path, params: TrainParams,
                     **kwargs: object) -> ClassNDiffOutputs:
    """The same DiT trained alone (Table I setting 1): `params` with the preset and joint fields reset."""
    baseline = params.model_copy(update={"preset": "setting1", **dict.fromkeys(JOINT_FIELDS)})
    return run_class_n_diff(latents, out_dir, report_dir, TrainParams.model_validate(baseline.model_dump()),
                            **kwargs)


def _outputs(result: RunResult, params: TrainParams, report: Path) -> ClassNDiffOutputs:
    run = result.run_dir
    paths = {"loss_curve": report / "loss_curve.png", "loss_csv": report / "loss_curve.csv",
             "final_metrics": report / "final_metrics.json",
             # rank 0 saves a grid whenever the run completed (training.train.finish)
             "sample_grid": report / "sample_grid.png" if result.summary["completed"] else None}
    summary = result.summary | {"run_dir": str(run), "report_dir": str(report), "world_size": result.world_size,
                                "loss_curve": str(paths["loss_curve"])}
    if result.rank == 0:  # one writer: the other DDP ranks trained alongside and leave the files to rank 0
        title = f"{run.name}: {params.preset}, {params.model} ({params.conditioning})"
        with atomic_path(paths["loss_curve"]) as temp:
            plot_loss_curve(result.metrics, temp, title)
        with atomic_path(paths["loss_csv"]) as temp:
            write_loss_csv(result.metrics, temp)
        if paths["sample_grid"] is not None and result.sample_grid is not None:
            with atomic_path(paths["sample_grid"]) as temp:
                shutil.copyfile(result.sample_grid, temp)
        write_json(flat_metrics(result.summary), paths["final_metrics"])
        write_json(summary, run / "summary.json")
    return ClassNDiffOutputs(run_dir=run, dit_ema=result.dit_ema, dit_config=result.dit_config,
                             classifier=result.classifier, classifier_config=result.classifier_config,
                             config=result.config, metrics=result.metrics, report_dir=report, summary=summary,
                             rank=result.rank, **paths)
