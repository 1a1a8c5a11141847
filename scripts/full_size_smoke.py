"""The real profile at the papers' model sizes on a handful of 256-px images, one stage per process (issue 14 §3).

What runs: `fairskin config --profile real --write` on a copy of params.yaml (the documented switch), then the
overrides in SMOKE (2 optimizer steps, 2-step sampling, tiny data, opened quality limits, everything in a work
folder), then each stage through `python -m pipelines.cli <stage> --params <copy>` — the command `dvc.yaml`
runs — in its own process: demo data at 256 px -> lesions -> skin tone -> external sets -> vae (an AutoencoderKL
with the configuration of `stabilityai/sd-vae-ft-ema`, random weights, saved with `save_pretrained` and loaded
through `vae.pretrained` as a folder, the path a hub id takes) -> latent shards (4x32x32) -> Class-N-Diff (DiT-L/4
cross-attention + ResNet-101, preempted after step 1, then resumed from its checkpoint to step 2) -> DiT
baseline (DiT-L/4 adaLN-Zero: the other conditioning mode) -> generation plan -> synthetic shards (DDPM, 2
steps) -> downstream classifiers (resnet50 at 224 px, 2 steps each) -> joint-classifier predictions ->
fairness report; `--all-stages` adds the generation report and the diffusion-classifier report (OPTIONAL).

Per stage it records the wall time, CPU time and peak memory: `peak RSS` is the stage process's own maximum
resident set (`ru_maxrss` from `os.wait4`, exact; it includes the interpreter and its imports, ~1 GiB);
`peak tree RSS` sums the resident sets of the stage process and its children (decode workers, DataLoader
workers), sampled from /proc every 0.2 s. `--max-batch` then probes the largest per-process batch of the
Class-N-Diff step (DiT-L/4 + ResNet-101, AdamW, EMA) that fits in 24 GiB of CPU memory: one process per batch
size, two optimizer steps each, none started whose predicted peak passes `--probe-limit-gib`; beyond, a linear
extrapolation. `--flops` counts the FLOPs and operator calls docs/cost_model.md scales to a GPU.

    .venv/bin/python scripts/full_size_smoke.py            # the stages; table and results JSON (make full-size-smoke)
    .venv/bin/python scripts/full_size_smoke.py --all-stages --max-batch --doc docs/benchmarks.md
    .venv/bin/python scripts/full_size_smoke.py --flops

tests/test_full_size.py runs `run_smoke` and asserts on what the stages wrote.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SECTION = "## Real profile at paper size, CPU"
GIB = 2**30

# stabilityai/sd-vae-ft-ema's config.json (diffusers AutoencoderKL; scaling_factor is the class default 0.18215)
SD_VAE_CONFIG = {
    "act_fn": "silu", "block_out_channels": [128, 256, 512, 512], "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32, "out_channels": 3,
    "sample_size": 256, "up_block_types": ["UpDecoderBlock2D"] * 4,
}
PRETRAINED_VAE = "pretrained/sd-vae-ft-ema"  # under the data root: vae.pretrained names it as a user would
TRAIN_STEPS = 2
PREEMPT_AT = 1  # the Class-N-Diff run is stopped after this step (a checkpoint), then resumed to TRAIN_STEPS

# On top of the real profile (pipelines/profiles.py). Sizes of models, images, latents, batches (except the
# downstream batch) and samplers stay the real profile's; what changes is how much data and how many steps.
SMOKE: dict[str, object] = {
    # a handful of 256-px images: the demo generator's smallest set, read from two sources (20 lesions; at this
    # melanoma rate every split holds both classes, which the reference network and the AUCs need)
    "demo_data.n_images": 60,
    "demo_data.n_ddi": 6,
    "demo_data.melanoma_rate": 0.45,
    "demo_data.image_sizes": {layout: [256, 256] for layout in
                              ("isic2016", "isic2017", "isic2018", "isic2019", "isic2020", "isic_archive", "ddi")},
    "lesions.sources": [{"layout": "isic2016", "path": "raw/demo/isic2016"},
                        {"layout": "isic_archive", "path": "raw/demo/isic_archive"}],
    "lesions.split.val_fraction": 0.25,
    "lesions.split.test_fraction": 0.25,
    "vae.pretrained": PRETRAINED_VAE,
    "vae.eval_images": 2,
    # random weights reconstruct nothing: the quality checks run but cannot pass at their real limits
    "latent_shards.checks": {"psnr_min": 0.0, "psnr_sample": 2, "mean_abs_max": 1e6, "std_min": 0.0, "std_max": 1e6},
    # 2 steps; the most expensive step: every latent through x̂0 into the classifier, whose AdamW steps every step
    "class_n_diff.train.steps": TRAIN_STEPS,
    "class_n_diff.train.gamma_initial": 1.0,
    "class_n_diff.train.gamma_max": 1.0,
    "class_n_diff.train.classifier_update_every": 1,
    "class_n_diff.train.x0_hat_max_t": None,
    "class_n_diff.train.log_every": 1,
    "class_n_diff.train.keep_checkpoints": 1,  # ~5 GB each: one at a time on a shared disk
    "class_n_diff.train.sample_steps": 2,  # the end-of-run grid: 6 rows (label x skin-tone group) of 1
    "class_n_diff.train.sample_per_row": 1,
    "synthetic_shards.sampling.steps": 2,  # DDPM as in the real profile, 2 of its 250 steps
    "downstream_classifiers.seeds": [0],  # one classifier per arm
    "downstream_classifiers.max_steps": TRAIN_STEPS,
    "downstream_classifiers.eval_every": 1,
    "downstream_classifiers.batch_size": 8,  # the real 64 at 224 px would cost ~10 CPU-minutes per run here
    "downstream_classifiers.num_workers": 2,
    # --all-stages only. The quality audit and FID on a few samples (its gate's limits were set on the demo codec,
    # README "The real profile"): the stage also draws a grid of 8 samples per label x skin-tone cell for each
    # judged model (GRID_COLUMNS, a constant: 96 SD-VAE decodes at 256 px, ~25 min on this CPU), cut to 1 per cell
    "generation_report.sample_counts": [2],
    "generation_report.ms_ssim_pairs": 2,
    "generation_report.plot_samples": 2,
    "generation_report.batch_size": 8,
    "generation_report.quality.min_samples": 2,
    "generation_report.quality.reference_steps": 2,
    "generation_report.quality.reference_batch_size": 8,
    "generation_report.quality.max_fid_ratio": 1e9,  # random weights: the gate runs, open
    "generation_report.quality.min_skin_tone_agreement": 0.0,
    "generation_report.quality.min_label_auc": 0.0,
    "generation_report.quality.max_memorized_fraction": 1.0,
    "generation_report.quality.min_skin_colour_plausible": 0.0,
    # --all-stages only. The diffusion classifier: 2 trials per class and image, no tuning, 2 DDIM steps for the
    # counterfactuals, 2 test and 2 DDI images
    "diffusion_classifier_report.tune": False,
    "diffusion_classifier_report.classifier.n_trials": 2,
    "diffusion_classifier_report.classifier.chunk_size": 2,
    "diffusion_classifier_report.classifier.counterfactual_steps": 2,
    "diffusion_classifier_report.max_trials_for_figures": 2,
    "diffusion_classifier_report.gallery_per_class": 1,
    "diffusion_classifier_report.max_test_images": 2,
    "diffusion_classifier_report.max_external_images": 2,
    "diffusion_classifier_report.bootstrap_samples": 50,
    "fairness_report.bootstrap_samples": 200,
    # models of 2 steps on a handful of images cannot meet the real limits: the check runs, open
    "fairness_report.check.max_sensitivity_gap": 1.0,
    "fairness_report.check.max_auc_gap": None,
    "fairness_report.check.max_auc_drop": None,
}
# The DiT baseline runs the other conditioning mode, so both modes train at DiT-L/4 size.
BASELINE = {"class_n_diff.train.conditioning": "adaln"}

# (name shown, stage, params variant, stop at step)
STAGES: list[tuple[str, str, str, int | None]] = [
    ("demo_data", "demo_data", "real", None),
    ("lesions", "lesions", "real", None),
    ("skin_tone", "skin_tone", "real", None),
    ("external_sets", "external_sets", "real", None),
    ("pretrained VAE (SD config, random weights)", "save_vae", "real", None),
    ("vae", "vae", "real", None),
    ("latent_shards", "latent_shards", "real", None),
    (f"class_n_diff_model, preempted after step {PREEMPT_AT}", "class_n_diff_model", "real", PREEMPT_AT),
    (f"class_n_diff_model, resumed to step {TRAIN_STEPS}", "class_n_diff_model", "real", None),
    ("dit_baseline (adaln)", "dit_baseline", "baseline", None),
    ("generation_plan", "generation_plan", "real", None),
    ("synthetic_shards", "synthetic_shards", "real", None),
    ("generation_report", "generation_report", "real", None),
    ("downstream_classifiers", "downstream_classifiers", "real", None),
    ("joint_classifier_predictions", "joint_classifier_predictions", "real", None),
    ("diffusion_classifier_report", "diffusion_classifier_report", "real", None),
    ("fairness_report", "fairness_report", "real", None),
]
# Not run by default (the slow test, `make full-size-smoke`): ~2 and ~5 min more here, mostly SD-VAE decodes and
# DiT-L/4 forwards on the CPU; `--all-stages` runs them.
OPTIONAL = ("generation_report", "diffusion_classifier_report")


def _set(raw: dict, key: str, value: object) -> None:
    *parents, leaf = key.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def write_params(work: Path) -> dict[str, Path]:
    """params.yaml copied, switched to the real profile as a user does, plus SMOKE; and the baseline's variant."""
    from pipelines.config import load_params
    from pipelines.profiles import write_profile

    real = work / "params.yaml"
    shutil.copyfile(ROOT / "params.yaml", real)
    write_profile(real, "real")
    raw = yaml.safe_load(real.read_text())
    raw["data_root"] = str(work / "data")
    for key, value in SMOKE.items():
        _set(raw, key, value)
    real.write_text(yaml.safe_dump(raw, sort_keys=False))
    baseline = work / "params_baseline.yaml"
    for key, value in BASELINE.items():
        _set(raw, key, value)
    baseline.write_text(yaml.safe_dump(raw, sort_keys=False))
    for path in (real, baseline):
        load_params(path)  # validates: a typo in SMOKE fails here, not in a stage
    return {"real": real, "baseline": baseline}


def save_random_sd_vae(folder: Path) -> dict:
    """An AutoencoderKL with sd-vae-ft-ema's configuration and seeded random weights, as `save_pretrained` writes."""
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    model = AutoencoderKL(**SD_VAE_CONFIG)
    model.save_pretrained(folder, safe_serialization=True)
    return {"parameters": sum(p.numel() for p in model.parameters()), "scaling_factor": model.config.scaling_factor}


# --- one process per stage, with its peak memory -------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(parent, []).append(int(entry.name))
    return tree


def tree_rss(pid: int) -> int:
    """Bytes resident in `pid` and all its descendants (now)."""
    tree, total, todo = _children(), 0, [pid]
    page = os.sysconf("SC_PAGE_SIZE")
    while todo:
        current = todo.pop()
        try:
            total += int(Path(f"/proc/{current}/statm").read_text().split()[1]) * page
        except (OSError, IndexError):
            pass
        todo.extend(tree.get(current, []))
    return total


def run_measured(command: list[str], log_path: Path, cwd: Path, timeout: float) -> dict:
    """Run `command`; wall and CPU seconds, exit code, exact peak RSS of the process, sampled peak of its tree."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DVC_NO_ANALYTICS": "1", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    started = time.perf_counter()
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env)
        peak = [0]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.2):
                peak[0] = max(peak[0], tree_rss(process.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        timer = threading.Timer(timeout, process.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
            stop.set()
            sampler.join()
        process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    return {"exit": process.returncode, "seconds": round(seconds, 1),
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_rss_gib": round(usage.ru_maxrss * 1024 / GIB, 2),  # KiB on Linux
            "peak_tree_rss_gib": round(max(peak[0], usage.ru_maxrss * 1024) / GIB, 2),
            "timed_out": seconds >= timeout}


def stage_command(stage: str, params: Path, stop_at: int | None, data: Path) -> list[str]:
    me = [sys.executable, str(Path(__file__).resolve())]
    if stage == "save_vae":
        return [*me, "--save-vae", str(data / PRETRAINED_VAE)]
    if stop_at is not None or stage == "generation_report":
        stop = ["--stop-at-step", str(stop_at)] if stop_at is not None else []
        return [*me, "--patched", stage, "--params", str(params), *stop]
    return [sys.executable, "-m", "pipelines.cli", stage, "--params", str(params)]


def patched_stage(stage: str, params_path: Path, stop_at: int | None) -> int:
    """The stage as `pipelines.cli` runs it (run, then its check), with what no param can set: the training loop
    stopped after `stop_at` steps with a checkpoint, as a preempted job (`train(stop_at_step=...)`; the next run
    of the stage resumes from it), and the quality audit's grid cut to one sample per cell."""
    import functools
    import logging

    import pipelines.class_n_diff.stage as training_stage
    import pipelines.generation_report.synthetic_quality as quality
    from pipelines.config import load_params
    from pipelines.stages import STAGES as PIPELINE_STAGES

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if stop_at is not None:
        training_stage.train = functools.partial(training_stage.train, stop_at_step=stop_at)
    quality.BALANCED = quality.BALANCED.drop_duplicates().reset_index(drop=True)
    params = load_params(params_path)
    PIPELINE_STAGES[stage].run(params)
    check = PIPELINE_STAGES[stage].check
    if check is not None:
        report = check(params)
        print(report.summary())
        return 0 if report.success else 1
    return 0


def folder_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def artifacts(data: Path) -> dict:
    """Sizes the cost model scales from (bytes), and what each model stage built."""
    def size(*parts: str) -> int:
        return folder_bytes(data.joinpath(*parts))

    manifest = json.loads((data / "latent_shards/shards/manifest.json").read_text())
    latents = sum(s["count"] for s in manifest["shards"])
    synthetic_manifest = data / "synthetic_shards/shards/manifest.json"
    synthetic = (sum(s["count"] for s in json.loads(synthetic_manifest.read_text())["shards"])
                 if synthetic_manifest.is_file() else 0)
    return {
        "lesions": json.loads((data / "lesions/report.json").read_text())["kept"],
        "latent_shard_bytes": sum(folder_bytes(p) for p in (data / "latent_shards/shards").glob("*.tar")),
        "latents": latents,
        "synthetic_shard_bytes": sum(folder_bytes(p) for p in (data / "synthetic_shards/shards").glob("*.tar")),
        "synthetic_samples": synthetic,
        "class_n_diff_run_bytes": size("class_n_diff"),
        "dit_baseline_run_bytes": size("dit_baseline"),
        "downstream_model_bytes": size("downstream_classifiers/runs/baseline/model.safetensors"),
        "pretrained_vae_bytes": size(PRETRAINED_VAE),
    }


def run_smoke(work: Path, timeout: float = 1800, progress: Callable[[str], None] = print,
              keep_checkpoints: bool = False, all_stages: bool = False) -> dict:
    """The stages of STAGES (without OPTIONAL unless `all_stages`), each in its own process under `work`; returns
    the measurements (also `work/results.json`). Stops at the first stage that fails. Checkpoints (~7 GB each) are
    deleted at the end unless kept."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    (work / "logs").mkdir(exist_ok=True)
    params = write_params(work)
    data = work / "data"
    results: dict = {"started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                     "machine": machine(), "load_average_start": os.getloadavg()[0], "stages": [],
                     "smoke": {k: v for k, v in SMOKE.items() if k != "demo_data.image_sizes"},
                     "baseline": BASELINE, "all_stages": all_stages}
    started = time.perf_counter()
    for index, (name, stage, variant, stop_at) in enumerate(STAGES):
        if stage in OPTIONAL and not all_stages:
            continue
        log_path = work / "logs" / f"{index:02d}_{stage}.log"
        command = stage_command(stage, params[variant], stop_at, data)
        measured = run_measured(command, log_path, work, timeout)
        row = {"name": name, "stage": stage, "log": str(log_path), **measured}
        if stage == "class_n_diff_model" and stop_at is not None:
            checkpoints = sorted((data / "checkpoints" / "class_n_diff").glob("step_*"))
            row["checkpoint"] = checkpoints[-1].name if checkpoints else None
            row["checkpoint_bytes"] = folder_bytes(checkpoints[-1]) if checkpoints else 0
            row["checkpoint_files"] = ({p.name: p.stat().st_size for p in checkpoints[-1].iterdir()}
                                       if checkpoints else {})
        results["stages"].append(row)
        progress(f"{name}: exit {row['exit']}, {row['seconds']:.0f} s, peak RSS {row['peak_rss_gib']:.2f} GiB "
                 f"(tree {row['peak_tree_rss_gib']:.2f})")
        if row["exit"] != 0:
            tail = log_path.read_text()[-3000:]
            results["failed"] = {"stage": name, "log_tail": tail}
            progress(tail)
            break
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    results["load_average_end"] = os.getloadavg()[0]
    if "failed" not in results:
        results["artifacts"] = artifacts(data)
    if not keep_checkpoints:
        shutil.rmtree(data / "checkpoints", ignore_errors=True)
    (work / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


# --- the largest batch that fits ----------------------------------------------------------------------------


def probe_batch(batch: int, conditioning: str) -> None:
    """Two Class-N-Diff optimizer steps at `batch` latents (γ = 1: every latent through x̂0 and the classifier;
    both AdamW step), in this process; prints the process's peak RSS as JSON."""
    import resource

    import torch

    from training.class_n_diff.step import StepNoise, joint_step
    from training.diffusion.schedule import DiffusionSchedule
    from training.dit import create_dit
    from training.latent_classifier import LatentClassifier, LatentClassifierConfig
    from training.train import ema_update

    torch.manual_seed(0)
    conditions = ("label", "skin_tone")
    dit = create_dit("DiT-L/4", conditioning=conditioning, input_size=(32, 32), conditions=conditions)
    ema = create_dit("DiT-L/4", conditioning=conditioning, input_size=(32, 32), conditions=conditions)
    ema.load_state_dict(dit.state_dict())
    ema.requires_grad_(False)
    classifier = LatentClassifier(LatentClassifierConfig(backbone="resnet101"))
    optimizers = [torch.optim.AdamW(dit.parameters(), lr=1e-4, weight_decay=0, fused=True),
                  torch.optim.AdamW(classifier.parameters(), lr=1e-4, fused=True)]
    schedule, generator = DiffusionSchedule(), torch.Generator().manual_seed(0)
    times = []
    for _ in range(2):
        started = time.perf_counter()
        z0 = torch.randn(batch, 4, 32, 32, generator=generator)
        labels = {"label": torch.randint(0, 2, (batch,), generator=generator),
                  "skin_tone": torch.randint(0, 3, (batch,), generator=generator)}
        draws = StepNoise.draw(z0.shape, schedule.num_timesteps, generator)
        result = joint_step(dit, classifier, schedule, z0, labels, draws, gamma=1.0, lam=0.2, generator=generator)
        result.backward.backward()
        for optimizer in optimizers:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        ema_update(ema, dit, 0.9999)
        times.append(time.perf_counter() - started)
    print(json.dumps({"batch": batch, "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB,
                      "step_seconds": times,
                      "parameters": {"dit": sum(p.numel() for p in dit.parameters()),
                                     "classifier": sum(p.numel() for p in classifier.parameters())}}))


def max_batch(work: Path, limit_gib: float, budget_gib: float = 24.0, conditioning: str = "cross_attn",
              batches: tuple[int, ...] = (1, 8, 16, 32, 48, 64), progress: Callable[[str], None] = print) -> dict:
    """Probe `batches` (one process each) while the linear fit predicts under `limit_gib`; the largest batch
    within `budget_gib` among the measured points, and extrapolated from the fit."""
    work.mkdir(parents=True, exist_ok=True)
    points: list[dict] = []
    for batch in batches:
        if len(points) >= 2:
            predicted = _fit(points)[0] + _fit(points)[1] * batch
            if predicted > limit_gib:
                progress(f"batch {batch}: predicted {predicted:.1f} GiB > {limit_gib} GiB probe limit; not run")
                break
        command = [sys.executable, str(Path(__file__).resolve()), "--probe", str(batch), "--conditioning",
                   conditioning]
        measured = run_measured(command, work / f"probe_{batch}.log", work, timeout=1800)
        lines = [ln for ln in (work / f"probe_{batch}.log").read_text().splitlines() if ln.startswith("{")]
        if measured["exit"] != 0 or not lines:
            progress(f"batch {batch}: failed (exit {measured['exit']}), see {work / f'probe_{batch}.log'}")
            break
        point = json.loads(lines[-1]) | {"seconds": measured["seconds"]}
        points.append(point)
        progress(f"batch {batch}: peak RSS {point['peak_rss_gib']:.2f} GiB, steps "
                 f"{', '.join(f'{s:.1f}' for s in point['step_seconds'])} s")
    intercept, slope = _fit(points)
    fitting = [p["batch"] for p in points if p["peak_rss_gib"] <= budget_gib]
    return {"points": points, "intercept_gib": intercept, "gib_per_sample": slope, "budget_gib": budget_gib,
            "probe_limit_gib": limit_gib, "largest_measured": max(fitting) if fitting else None,
            **extrapolations(points, budget_gib), "conditioning": conditioning}


def extrapolations(points: list[dict], budget_gib: float) -> dict:
    """The batch at which the least-squares line reaches `budget_gib`, and at which the last two probes' slope
    does (the more cautious one when memory per latent grows with the batch)."""
    intercept, slope = _fit(points)
    last, before = points[-1], points[-2] if len(points) > 1 else None
    last_slope = ((last["peak_rss_gib"] - before["peak_rss_gib"]) / (last["batch"] - before["batch"])
                  if before else 0.0)
    return {"largest_extrapolated": int((budget_gib - intercept) // slope) if slope > 0 else None,
            "largest_extrapolated_last_slope": (last["batch"] + int((budget_gib - last["peak_rss_gib"]) // last_slope)
                                                if last_slope > 0 else None)}


def _fit(points: list[dict]) -> tuple[float, float]:
    """Least-squares line peak_rss = a + b * batch over the probes at batch >= 8 (batch 1 only when alone)."""
    use = [p for p in points if p["batch"] >= 8] if sum(p["batch"] >= 8 for p in points) >= 2 else points
    xs, ys = [p["batch"] for p in use], [p["peak_rss_gib"] for p in use]
    if len(use) < 2:
        return (ys[0] if ys else 0.0), 0.0
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum((x - mean_x) ** 2 for x in xs)
    return mean_y - slope * mean_x, slope


# --- what a GPU would have to compute (docs/cost_model.md) -----------------------------------------------------


def count_costs(batch: int = 2) -> dict:
    """FLOPs (torch's FlopCounterMode: 2 per multiply-add, matmuls and convolutions) per image or latent of every
    network the real profile runs, and the FLOPs and aten operator calls of one Class-N-Diff training step
    (forward + backward, γ = 1) per latent. Operator calls do not grow with the batch: on a GPU each is at least one
    kernel launch, which is what bounds a batch-8 step of 64-token sequences."""
    import timm
    import torch
    from diffusers import AutoencoderKL
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    from training.class_n_diff.step import StepNoise, joint_step
    from training.diffusion.schedule import DiffusionSchedule
    from training.dit import create_dit
    from training.latent_classifier import LatentClassifier, LatentClassifierConfig

    class Calls(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
            self.count += 1
            return func(*args, **(kwargs or {}))

    def flops(run: Callable[[], object]) -> int:
        with FlopCounterMode(display=False) as counter:
            run()
        return counter.get_total_flops()

    torch.manual_seed(0)
    out: dict = {"batch_counted": batch, "networks": {}}
    latents = torch.randn(batch, 4, 32, 32)
    conditions = {"label": torch.zeros(batch, dtype=torch.long), "skin_tone": torch.zeros(batch, dtype=torch.long)}
    t = torch.full((batch,), 500)
    classifier = LatentClassifier(LatentClassifierConfig(backbone="resnet101"))
    with torch.no_grad():
        for mode in ("cross_attn", "adaln"):
            dit = create_dit("DiT-L/4", conditioning=mode, input_size=(32, 32), conditions=tuple(conditions)).eval()
            out["networks"][f"DiT-L/4 {mode} forward"] = {
                "flops": flops(lambda dit=dit: dit(latents, t, conditions)) / batch,
                "parameters": sum(p.numel() for p in dit.parameters())}
            del dit
        out["networks"]["ResNet-101 latent classifier forward"] = {
            "flops": flops(lambda: classifier(latents)) / batch,
            "parameters": sum(p.numel() for p in classifier.parameters())}
        vae = AutoencoderKL(**SD_VAE_CONFIG).eval()
        images = torch.randn(batch, 3, 256, 256)
        out["networks"]["SD VAE encoder, 256 px"] = {"flops": flops(lambda: vae.encode(images)) / batch,
                                                      "parameters": sum(p.numel() for p in vae.encoder.parameters())}
        out["networks"]["SD VAE decoder, 256 px"] = {"flops": flops(lambda: vae.decode(latents)) / batch,
                                                      "parameters": sum(p.numel() for p in vae.decoder.parameters())}
        resnet50 = timm.create_model("resnet50", num_classes=1).eval()
        crops = torch.randn(batch, 3, 224, 224)
        out["networks"]["resnet50 forward, 224 px"] = {"flops": flops(lambda: resnet50(crops)) / batch,
                                                       "parameters": sum(p.numel() for p in resnet50.parameters())}
    # one joint step, forward + backward
    dit = create_dit("DiT-L/4", conditioning="cross_attn", input_size=(32, 32), conditions=tuple(conditions))
    schedule, generator = DiffusionSchedule(), torch.Generator().manual_seed(0)
    draws = StepNoise.draw(latents.shape, schedule.num_timesteps, generator)

    def step(with_classifier: bool = True) -> None:
        result = joint_step(dit, classifier if with_classifier else None, schedule, latents, conditions, draws,
                            gamma=1.0, lam=0.2, generator=torch.Generator().manual_seed(0))
        result.backward.backward()

    for key, with_classifier in (("training_step", True), ("training_step_dit_alone", False)):
        out[f"{key}_flops_per_latent"] = flops(lambda w=with_classifier: step(w)) / batch
        calls = Calls()
        with calls:
            step(with_classifier)
        out[f"{key}_aten_calls"] = calls.count
    return out


# --- the report ---------------------------------------------------------------------------------------------


def machine() -> str:
    cpu = platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines() if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    try:
        import torch

        torch_version = torch.__version__
        threads = torch.get_num_threads()
    except ImportError:
        torch_version, threads = "?", "?"
    return (f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB, torch {torch_version} (run on the CPU, "
            f"{threads} intra-op threads by default)")


def markdown(results: dict, batch: dict | None) -> str:
    core = results["total_seconds"] - sum(r["seconds"] for r in results["stages"] if r["stage"] in OPTIONAL)
    rows = ["| stage | exit | wall (s) | CPU (s) | peak RSS (GiB) | peak RSS incl. children (GiB) |",
            "|---|---|---:|---:|---:|---:|"]
    for row in results["stages"]:
        rows.append(f"| {row['name']} | {row['exit']} | {row['seconds']:.0f} | {row['cpu_seconds']:.0f} | "
                    f"{row['peak_rss_gib']:.2f} | {row['peak_tree_rss_gib']:.2f} |")
    lines = [SECTION, "",
             f"`scripts/full_size_smoke.py` (`make full-size-smoke`; the slow test `tests/test_full_size.py`), "
             f"{results['started'][:10]}. Machine: {results['machine']}; shared with other jobs (load average "
             f"{results['load_average_start']:.1f} at the start, {results['load_average_end']:.1f} at the end).", "",
             "The real profile (`fairskin config --profile real --write` on a copy of params.yaml) with the "
             f"script's `SMOKE` overrides: a handful of 256-px demo images "
             f"({(results.get('artifacts') or {}).get('lesions', '?')} lesions in the ISIC 2016 and archive "
             "layouts, 6 DDI images), an AutoencoderKL "
             "of sd-vae-ft-ema's configuration with random weights loaded as `vae.pretrained` from a local "
             "folder, DiT-L/4 (cross-attention, with the ResNet-101 latent classifier; the baseline with "
             f"adaLN-Zero) at batch 8, {TRAIN_STEPS} optimizer steps per training stage (Class-N-Diff preempted "
             f"after step {PREEMPT_AT} and resumed from its checkpoint), DDPM sampling with 2 steps, resnet50 at "
             "224 px (batch 8, one classifier per arm), the fairness report"
             + (("; with `--all-stages` also the generation report (its quality audit's grid cut from 8 to 1 "
                 "sample per cell, the other counts to 2) and the diffusion classifier (2 trials, no tuning, 2 "
                 "test and 2 DDI images)") if results.get("all_stages") else "")
             + ". Quality checks and the fairness check run with their limits opened (random weights). "
             "Each stage is "
             "`python -m pipelines.cli <stage>` in its own process (the preempted run: the same stage function "
             "with `train(stop_at_step=1)`). Peak RSS: the stage process's `ru_maxrss` (`os.wait4`), exact, "
             "with the interpreter and its imports (~1 GiB: `pipelines.config` imports torch); incl. children: "
             "the stage process plus its worker "
             "processes, summed, sampled every 0.2 s (so it may miss a short peak).", "",
             *rows, "",
             f"Total {results['total_seconds']:.0f} s ({results['total_seconds'] / 60:.1f} min)"
             + (f"; without the two optional stages (the slow test, `make full-size-smoke`) {core:.0f} s "
                f"({core / 60:.1f} min)." if results.get("all_stages") else ".")]
    art = results.get("artifacts")
    preempted = next((r for r in results["stages"] if r.get("checkpoint")), None)
    if art and preempted:
        lines += ["", f"Sizes: one Class-N-Diff checkpoint (DiT-L/4 + EMA + AdamW moments + ResNet-101 and its "
                      f"AdamW) {preempted['checkpoint_bytes'] / 1e9:.2f} GB; the Class-N-Diff run folder (DiT "
                      f"and EMA weights, classifier, metrics, grid) {art['class_n_diff_run_bytes'] / 1e9:.2f} GB; "
                      f"latent shards {art['latent_shard_bytes'] / max(art['latents'], 1) / 1e3:.1f} kB per "
                      f"image; synthetic shards "
                      f"{art['synthetic_shard_bytes'] / max(art['synthetic_samples'], 1) / 1e3:.1f} kB per sample "
                      f"(fp16 latents + 256-px PNG); resnet50 weights "
                      f"{art['downstream_model_bytes'] / 1e6:.0f} MB."]
    if batch:
        points = ", ".join(f"{p['batch']}: {p['peak_rss_gib']:.2f}" for p in batch["points"])
        grown = [(a["batch"], b["batch"], (b["peak_rss_gib"] - a["peak_rss_gib"]) / (b["batch"] - a["batch"]) * 1024)
                 for a, b in zip(batch["points"][1:], batch["points"][2:], strict=False)]
        steps = ", ".join(f"{low}→{high}: {mib:.0f}" for low, high, mib in grown)
        lines += ["", f"**Largest per-process batch of the Class-N-Diff step in {batch['budget_gib']:.0f} GiB of CPU "
                      f"memory** (DiT-L/4 {batch['conditioning']} + ResNet-101, fp32, fused AdamW on both, EMA; "
                      "γ = 1, so every latent also passes the classifier through x̂0; two optimizer steps in a "
                      "process of its own per batch size, `--probe N`). Peak RSS (GiB) by batch: "
                      f"{points}. The fixed part (weights, EMA, gradients and AdamW moments of 448 M parameters in "
                      "fp32, and the interpreter) is ~9 GiB; each latent adds activations, "
                      f"MiB per latent between probes: {steps} — uneven, and largest at the top. Largest "
                      f"measured batch within {batch['budget_gib']:.0f} GiB: **{batch['largest_measured']}**. "
                      "Larger batches were "
                      f"not tried (no probe predicted above {batch['probe_limit_gib']:.0f} GiB is started on this "
                      f"shared machine; the last one reached {batch['points'][-1]['peak_rss_gib']:.1f}): a "
                      f"least-squares line over batch ≥ 8 ({batch['intercept_gib']:.2f} GiB + "
                      f"{batch['gib_per_sample'] * 1024:.0f} MiB per latent) reaches {batch['budget_gib']:.0f} GiB "
                      f"at {batch['largest_extrapolated']} latents, the last increment ({grown[-1][2]:.0f} MiB per "
                      f"latent) at {batch['largest_extrapolated_last_slope']}: **≈ "
                      f"{batch['largest_extrapolated_last_slope']}–{batch['largest_extrapolated']} latents per "
                      "process, extrapolated**, with no headroom for the OS, other processes or a data loader."]
    lines += ["", "Reproduce (~45 min here, ~19 GiB at the largest probe): "
                  "`.venv/bin/python scripts/full_size_smoke.py --all-stages --max-batch --doc docs/benchmarks.md`; "
                  "FLOPs and operator counts for docs/cost_model.md: `--flops`."]
    return "\n".join(lines) + "\n"


def write_section(path: Path, text: str) -> None:
    """Replace this script's section of `path` (or append it), keeping every other section."""
    old = path.read_text() if path.is_file() else "# Benchmarks\n"
    start = old.find(SECTION + "\n")
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = old.find("\n## ", start + len(SECTION))
        new = old[:start] + text + (old[end:] if end >= 0 else "")
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(new)
    os.replace(temp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, help="folder for the run (default: a new temporary folder, removed)")
    parser.add_argument("--doc", type=Path, help="write the section to this markdown file (docs/benchmarks.md)")
    parser.add_argument("--max-batch", action="store_true", help="also probe the largest Class-N-Diff batch")
    parser.add_argument("--probe-limit-gib", type=float, default=18.0,
                        help="--max-batch: no probe whose predicted peak exceeds this (a shared machine)")
    parser.add_argument("--probe-batches", default="1,8,16,32,48,64", help="--max-batch: the batch sizes to try")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (and the checkpoints)")
    parser.add_argument("--all-stages", action="store_true", help=f"also run {', '.join(OPTIONAL)}")
    # child modes
    parser.add_argument("--save-vae", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--patched", help=argparse.SUPPRESS)
    parser.add_argument("--params", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--stop-at-step", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--flops", action="store_true",
                        help="count FLOPs per network and operator calls per training step (JSON), then exit")
    parser.add_argument("--probe", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--conditioning", default="cross_attn", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.save_vae:
        print(json.dumps(save_random_sd_vae(args.save_vae)))
        return 0
    if args.patched:
        return patched_stage(args.patched, args.params, args.stop_at_step)
    if args.flops:
        print(json.dumps(count_costs(), indent=2))
        return 0
    if args.probe:
        probe_batch(args.probe, args.conditioning)
        return 0

    work = args.work or Path(tempfile.mkdtemp(prefix="full_size_smoke_"))
    try:
        results = run_smoke(work, keep_checkpoints=args.keep, all_stages=args.all_stages)
        batches = tuple(int(b) for b in args.probe_batches.split(","))
        batch = (max_batch(work / "max_batch", args.probe_limit_gib, batches=batches)
                 if args.max_batch and "failed" not in results else None)
        if batch:
            results["max_batch"] = batch
            (work / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        text = markdown(results, batch)
        print(text)
        if args.doc and "failed" not in results:
            write_section(args.doc, text)
        summary = ROOT / "test-artifacts" / "full_size_smoke.json"
        summary.parent.mkdir(exist_ok=True)
        summary.write_text(json.dumps(results, indent=2) + "\n")
        return 1 if "failed" in results else 0
    finally:
        if args.work is None and not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
