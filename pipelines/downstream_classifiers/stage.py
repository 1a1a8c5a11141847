"""The `downstream_classifiers` stage (issue 6 §1; METHOD.md §5): does synthetic data make the classifier fairer?

The same backbone and step budget are trained once per arm and seed (training/downstream; docs/experiment.md):
`baseline` on the real training split only, `oversampled` on the real split with the generation plan's
under-represented cells oversampled to the plan's targets (oversampling.py), `augmented` on the real training
split plus every synthetic sample (mixed per `DownstreamParams.synthetic_mixing`). With several seeds a
classifier is named `<arm>_s<seed>`; seed s is the same init, data order and augmentation draw in every arm,
so arms are paired by seed. All are early-stopped on the AUC of the real validation split and keep
their best-validation weights. Each then predicts the validation split (`validation_predictions.parquet`,
test_set `isic_val`), the ISIC test split (`isic_test`) and every external set present in the external-sets
table (test_set = its dataset name) into `predictions.parquet`, in the schema of
pipelines/fairness/predictions.py.

Decision threshold: `pipelines.fairness.threshold.choose_threshold` on each classifier's validation
predictions (Youden's J, ties to the lowest threshold, 0.5 when validation lacks a class: see that module);
the fairness report recomputes it from `validation_predictions.parquet` with the same function. Re-running
the stage resumes each classifier from its latest checkpoint (a finished one is not retrained).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipelines.atomic_files import write_json, write_parquet
from pipelines.downstream_classifiers.oversampling import oversampled_items
from pipelines.downstream_classifiers.predict import prediction_frame
from pipelines.downstream_classifiers.sources import TestSet, external_test_sets, lesion_split, synthetic_items
from pipelines.fairness.predictions import validate_predictions
from pipelines.fairness.threshold import YOUDEN_RULE, youden_choice
from training.downstream.evaluate import roc_auc
from training.downstream.execution import intra_op_threads, resolve_device
from training.downstream.model import load_classifier
from training.downstream.params import DownstreamParams
from training.downstream.train import train_classifier

log = logging.getLogger(__name__)
VALIDATION_SET = "isic_val"
ISIC_TEST_SET = "isic_test"
BASELINE, OVERSAMPLED, AUGMENTED = "baseline", "oversampled", "augmented"


@dataclass(frozen=True)
class DownstreamOutputs:
    predictions: Path  # isic_test + external sets, both classifiers
    validation_predictions: Path  # isic_val, both classifiers
    runs: Path  # <classifier>/: run.json, result.json, model.safetensors, config.json
    summary_json: Path
    summary: dict


def output_paths(out: Path) -> dict[str, Path]:
    out = Path(out)
    return {"predictions": out / "predictions.parquet",
            "validation_predictions": out / "validation_predictions.parquet",
            "runs": out / "runs", "summary_json": out / "summary.json"}


def run_downstream_classifiers(params: DownstreamParams, lesions: Path, external_sets: Path | None,
                               synthetic_shards: Path | None, data_root: Path, out: Path,
                               plan: Path | None = None, checkpoints: Path | None = None) -> DownstreamOutputs:
    """`lesions`: the lesions parquet; `external_sets`: the external-sets parquet (None or absent: no external
    test sets); `synthetic_shards`: the synthetic_shards stage's output folder (None: no `augmented` classifier);
    `plan`: the generation plan parquet (None: no `oversampled` classifier); `data_root`: the folder image paths
    are relative to; `checkpoints`: where each classifier's resumable checkpoints go, `<checkpoints>/<classifier>`
    (default `<out>/checkpoints`: outside the DVC out `<out>/runs`)."""
    checkpoints = Path(checkpoints) if checkpoints is not None else Path(out) / "checkpoints"
    with intra_op_threads(params.torch_threads):
        return _run(params, Path(lesions), external_sets, synthetic_shards, Path(data_root), Path(out), plan,
                    checkpoints)


@dataclass(frozen=True)
class Job:
    name: str  # the classifier's name in the predictions
    arm: str
    params: DownstreamParams  # with this job's seed
    extra: list  # training items beyond the real split: synthetic samples or oversampled copies


def _run(params: DownstreamParams, lesions: Path, external_sets: Path | None, synthetic_shards: Path | None,
         data_root: Path, out: Path, plan: Path | None, checkpoints: Path) -> DownstreamOutputs:
    paths = output_paths(out)
    table = pd.read_parquet(lesions)
    train = lesion_split(table, data_root, "train", "isic_train", str(lesions))
    validation = lesion_split(table, data_root, "val", VALIDATION_SET, str(lesions))
    test_sets = [lesion_split(table, data_root, "test", ISIC_TEST_SET, str(lesions))]
    notes = {}
    if external_sets is not None and Path(external_sets).is_file():
        test_sets += external_test_sets(pd.read_parquet(external_sets), data_root, str(external_sets))
    else:
        notes["external_sets"] = f"{external_sets}: not present - only the ISIC test split is predicted"
    synthetic = None
    if AUGMENTED in params.arms and synthetic_shards is not None:
        synthetic = synthetic_items(synthetic_shards)
        if not synthetic:
            log.warning("%s: no synthetic samples; `augmented` trains on the real images only", synthetic_shards)
    elif AUGMENTED in params.arms:
        notes[AUGMENTED] = "no synthetic shards given - not trained"
    plan_table = pd.read_parquet(plan) if plan is not None and Path(plan).is_file() else None
    if OVERSAMPLED in params.arms and plan_table is None:
        notes[OVERSAMPLED] = f"no generation plan ({plan}) - not trained"

    seeds = params.seed_list()
    jobs = []
    for arm in params.arms:
        for seed in seeds:
            if arm == AUGMENTED and synthetic is None or arm == OVERSAMPLED and plan_table is None:
                continue
            extra = (synthetic if arm == AUGMENTED else
                     oversampled_items(train.items, train.meta, plan_table, seed) if arm == OVERSAMPLED else [])
            name = arm if len(seeds) == 1 else f"{arm}_s{seed}"
            jobs.append(Job(name, arm, params.model_copy(update={"seed": seed}), extra))
    results = run_jobs(jobs, train, validation, test_sets, paths["runs"], params.parallel_runs, checkpoints)

    predictions, validation_rows, classifiers = [], [], {}
    for job, (val_frame, frames, summary) in zip(jobs, results, strict=True):
        validation_rows.append(val_frame)
        predictions.extend(frames)
        threshold = youden_choice(val_frame["label"].to_numpy(), val_frame["score"].to_numpy())
        classifiers[job.name] = {
            **summary, "arm": job.arm, "seed": job.params.seed, "train_real": len(train.items),
            "train_synthetic": len(job.extra) if job.arm == AUGMENTED else 0,
            "train_oversampled": len(job.extra) if job.arm == OVERSAMPLED else 0,
            "run_dir": (paths["runs"] / job.name).as_posix(), "threshold": threshold.threshold,
            "threshold_note": threshold.note,
            "auc": {f["test_set"].iat[0]: _auc(f) for f in [val_frame, *frames] if len(f)},
        }

    predictions_table = validate_predictions(pd.concat(predictions, ignore_index=True), str(paths["predictions"]))
    validation_table = validate_predictions(pd.concat(validation_rows, ignore_index=True),
                                            str(paths["validation_predictions"]))
    write_parquet(predictions_table, paths["predictions"])
    write_parquet(validation_table, paths["validation_predictions"])
    summary = {
        "backbone": params.backbone, "image_size": params.image_size, "seeds": seeds, "arms": list(params.arms),
        "max_steps": params.max_steps, "synthetic_mixing": params.synthetic_mixing,
        "classifiers": classifiers, "threshold_rule": YOUDEN_RULE,
        "test_sets": {t.name: len(t.items) for t in test_sets}, "validation_images": len(validation.items),
        "notes": notes,
    }
    write_json(summary, paths["summary_json"])
    return DownstreamOutputs(summary=summary, **paths)


def run_jobs(jobs: list[Job], train: TestSet, validation: TestSet, test_sets: list[TestSet], runs: Path,
             parallel: int, checkpoints: Path) -> list[tuple[pd.DataFrame, list[pd.DataFrame], dict]]:
    """Train and predict every job; `parallel` > 1 runs that many at once in spawned processes (CPU demo: one
    classifier per core, one thread each, as the DiT runs)."""
    arguments = [(job, train, validation, test_sets, runs, checkpoints) for job in jobs]
    if parallel <= 1 or len(jobs) <= 1:
        return [train_and_predict(*a) for a in arguments]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=min(parallel, len(jobs)),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(train_and_predict, *zip(*arguments, strict=True)))


def train_and_predict(job: Job, train: TestSet, validation: TestSet, test_sets: list[TestSet],
                      runs: Path, checkpoints: Path) -> tuple[pd.DataFrame, list[pd.DataFrame], dict]:
    params = job.params
    with intra_op_threads(params.torch_threads):
        log.info("%s: %d real + %d extra training images, %d validation", job.name, len(train.items),
                 len(job.extra), len(validation.items))
        result = train_classifier(params, train.items, job.extra, validation.items, runs / job.name, name=job.name,
                                  checkpoint_dir=checkpoints / job.name)
        model, config = load_classifier(result.weights)
        device = resolve_device(params.device)
        model.to(device)
        val_frame = prediction_frame(model, config, job.name, validation, params.eval_batch_size, device,
                                     params.num_workers)
        frames = [prediction_frame(model, config, job.name, t, params.eval_batch_size, device, params.num_workers)
                  for t in test_sets]
    return val_frame, frames, result.summary()


def _auc(frame: pd.DataFrame) -> float | None:
    value = roc_auc(frame["label"].to_numpy(), frame["score"].to_numpy())
    return None if value != value else round(value, 6)  # NaN (a single class) -> null in JSON
