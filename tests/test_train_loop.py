"""The training loop: exact resume, learning on a tiny latent set, the run folder, loud failure on NaN."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from training.class_n_diff.data_order import DataOrder
from training.class_n_diff.params import TrainParams
from training.class_n_diff.samples_seen import read_samples_seen, samples_seen_path
from training.dit import load_dit
from training.latent_classifier import load_latent_classifier
from training.latent_set import LatentSet
from training.train import TrainingDiverged, latent_fingerprint, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def toy_latents(n: int, seed: int, shape: tuple[int, int, int] = (4, 8, 8)) -> LatentSet:
    """Latents whose class shows as a ±1 offset of channel 0, with a cached posterior std."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    mean = torch.randn(n, *shape, generator=g) * 0.5
    mean[:, 0] += (labels.float() * 2 - 1)[:, None, None]
    return LatentSet(keys=[f"toy{seed}_{i}" for i in range(n)], mean=mean, std=torch.full_like(mean, 0.05),
                     conditions={"label": labels, "skin_tone": torch.randint(0, 4, (n,), generator=g)})


TINY = {"classifier_backbone": "test_resnet", "classifier_head_hidden": 32, "sample_steps": 5, "sample_per_row": 2}


def losses(run: Path, steps: range) -> list[dict]:
    keep = ("loss_total", "loss_diff", "mse", "vb", "loss_cls", "x0_hat_fraction", "gamma")
    lines = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: ln[k] for k in keep} for ln in lines if "kind" not in ln and ln["step"] in steps]


def test_resume_repeats_the_uninterrupted_run(tmp_path: Path) -> None:
    # setting3 with γ rising every 2 steps and a classifier step every 3: k = 7 stops between two classifier
    # steps, so the pending classifier gradient must travel through the checkpoint too
    params = TrainParams(steps=14, gamma_period=2, gamma_step=0.25, gamma_max=1.0, log_every=1, checkpoint_every=7,
                         validate_every=7, record_samples=True, **TINY)
    data, val = toy_latents(24, 0), toy_latents(8, 1)
    whole = train(data, tmp_path / "whole", params, val_set=val)
    partial = train(data, tmp_path / "resumed", params, val_set=val, stop_at_step=7)
    assert not partial.summary["completed"] and partial.summary["steps"] == 7
    assert (tmp_path / "checkpoints/resumed/step_00000007/classifier_grad.safetensors").is_file()
    # a run that died in step 8, after its step-7 checkpoint, had already logged step 8's samples
    with samples_seen_path(partial.run_dir, 0).open("a") as handle:
        handle.write("8\t0\tnot_a_key\n")
    resumed = train(data, tmp_path / "resumed", params, val_set=val)
    assert resumed.summary["completed"] and resumed.summary["steps"] == 14
    a, b = losses(whole.run_dir, range(1, 15)), losses(resumed.run_dir, range(1, 15))
    assert len(a) == len(b) == 14
    assert sum(ln["x0_hat_fraction"] for ln in a[7:]) > 0  # the gate really picked x̂0 after the resume point
    for x, y in zip(a, b, strict=True):
        assert x == pytest.approx(y, rel=1e-6, abs=1e-7)
    for name in ("dit.safetensors", "dit_ema.safetensors", "classifier.safetensors"):
        left, right = load_file(str(whole.run_dir / name)), load_file(str(resumed.run_dir / name))
        for key in left:
            torch.testing.assert_close(left[key], right[key], rtol=1e-6, atol=1e-7, msg=f"{name}:{key}")
    # the samples seen: each step's global batch of the data order once, also across the interruption
    order = DataOrder(24, 8, seed=0)
    expected = {(step, 0): [data.keys[i] for i in order.global_batch(step - 1).tolist()] for step in range(1, 15)}
    assert read_samples_seen(whole.run_dir) == read_samples_seen(resumed.run_dir) == {0: expected}
    assert whole.samples_seen == whole.run_dir / "samples_seen" and (whole.rank, whole.world_size) == (0, 1)
    # resuming a finished run changes nothing (record_samples is operational: it may change); other params refuse
    again = train(data, tmp_path / "resumed", params.model_copy(update={"record_samples": False}), val_set=val)
    assert again.summary["final"]["loss_diff"] == resumed.summary["final"]["loss_diff"]
    assert again.samples_seen is None and read_samples_seen(resumed.run_dir) == {0: expected}
    with pytest.raises(ValueError, match=r"\['lr'\]"):
        train(data, tmp_path / "resumed", params.model_copy(update={"lr": 3e-4}))


def test_new_data_refuses_a_strict_resume_and_starts_over_in_the_stage_mode(tmp_path: Path) -> None:
    params = TrainParams(steps=4, log_every=1, checkpoint_every=2, validate_every=4, preset="setting1", **TINY)
    train(toy_latents(16, 0), tmp_path / "run", params, stop_at_step=2)
    more_images = toy_latents(24, 0)  # a nightly run after new images arrived
    with pytest.raises(ValueError, match=r"cannot resume, \['data.n_train'\]"):
        train(more_images, tmp_path / "run", params)
    fresh = train(more_images, tmp_path / "fresh", params)
    again = train(more_images, tmp_path / "run", params, resume="if_compatible")
    assert json.loads((again.run_dir / "config.json").read_text())["data"]["n_train"] == 24
    assert again.summary["completed"] and losses(again.run_dir, range(1, 5)) == losses(fresh.run_dir, range(1, 5))
    relabelled = toy_latents(24, 0)
    relabelled.conditions["label"][0] = 1 - relabelled.conditions["label"][0]
    with pytest.raises(ValueError, match=r"cannot resume, \['data.fingerprint'\]"):
        train(relabelled, tmp_path / "run", params)
    # the same config again: nothing to redo, the finished run is kept
    resumed = train(more_images, tmp_path / "run", params, resume="if_compatible")
    assert losses(resumed.run_dir, range(1, 5)) == losses(fresh.run_dir, range(1, 5))


def test_tiny_model_learns(tmp_path: Path) -> None:
    params = TrainParams(steps=100, batch_size=16, lr=1e-3, classifier_lr=1e-3, preset="setting4", log_every=5,
                         validate_every=50, checkpoint_every=100, **TINY)
    result = train(toy_latents(96, 2), tmp_path / "run", params, val_set=toy_latents(48, 3))
    lines = [json.loads(ln) for ln in result.metrics.read_text().splitlines()]
    train_lines = [ln for ln in lines if "kind" not in ln]
    validation = [ln for ln in lines if ln.get("kind") == "validation"]
    first, last = train_lines[0]["loss_diff"], train_lines[-1]["loss_diff"]
    # ε-MSE starts near 1 (a zero-initialised output predicts ε̂ = 0); the tiny DiT learns the data's structure
    assert first > 0.9 and last < 0.4, (first, last)
    assert validation[-1]["diffusion"]["mse"] < 0.4, validation[-1]
    cls = validation[-1]["classifier"]  # chance = 0.5: the class is the sign of channel 0's offset
    assert cls["auc"] > 0.95 and cls["accuracy"] > 0.9, cls
    assert train_lines[-1]["gamma"] == 0.25  # setting4's ramp reached γ_max
    assert sum(ln["x0_hat_fraction"] for ln in train_lines) > 0  # x̂0 did reach the classifier


def test_run_folder_describes_itself(tmp_path: Path) -> None:
    params = TrainParams(steps=4, log_every=2, checkpoint_every=2, keep_checkpoints=1, validate_every=4, **TINY)
    result = train(toy_latents(16, 4), tmp_path / "run", params, val_set=toy_latents(8, 5))
    config = json.loads(result.config.read_text())
    assert config["params"]["preset"] == "setting3" and config["joint"]["lam"] == 0.2
    assert config["dit"]["input_size"] == [8, 8] and config["dit"]["conditions"] == ["label", "skin_tone"]
    assert config["data"] == {"n_train": 16, "latent_shape": [4, 8, 8], "posterior_std": True,
                              "steps_per_epoch": 2, "label_counts": [8, 8],
                              "fingerprint": latent_fingerprint(toy_latents(16, 4))}
    assert latent_fingerprint(toy_latents(16, 4)) != latent_fingerprint(toy_latents(16, 5))
    assert [p.name for p in result.checkpoints.iterdir()] == ["step_00000004"]  # keep_checkpoints = 1
    dit = load_dit(result.dit_ema)  # no config file needed
    assert dit.config.to_dict() == json.loads(result.dit_config.read_text())
    assert load_latent_classifier(result.classifier).config.backbone == "test_resnet"
    assert result.sample_grid.is_file() and result.sample_grid.with_suffix(".safetensors").is_file()
    assert result.summary["sample_grid"]["rows"][0] == "label=0 skin_tone=A"
    assert json.loads((result.run_dir / "summary.json").read_text())["steps"] == 4
    baseline = train(toy_latents(16, 4), tmp_path / "baseline", params.model_copy(update={"preset": "setting1"}))
    assert baseline.classifier is None and not (baseline.run_dir / "classifier.safetensors").exists()
    assert baseline.summary["final"]["loss_cls"] is None
    assert not (result.run_dir / "samples_seen").exists()  # record_samples is off by default


def test_nan_loss_names_the_step_and_the_last_good_checkpoint(tmp_path: Path) -> None:
    data = toy_latents(32, 6)
    order = DataOrder(32, 8, seed=0)
    bad_step = 2  # poison a row first used by step 3 (0-based 2), so steps 1 and 2 checkpoint cleanly
    row = next(r for r in order.global_batch(bad_step).tolist()
               if all(r not in order.global_batch(s).tolist() for s in range(bad_step)))
    data.mean[row] = float("nan")
    params = TrainParams(steps=6, checkpoint_every=1, **TINY)
    with pytest.raises(TrainingDiverged, match=r"step 3 .*last good checkpoint: .*step_00000002"):
        train(data, tmp_path / "run", params)


def test_stage_functions_write_loss_curves_and_flat_metrics(tmp_path: Path) -> None:
    from pipelines.class_n_diff import run_class_n_diff, run_dit_baseline

    params = TrainParams(steps=6, log_every=2, checkpoint_every=6, validate_every=3, preset="setting4", **TINY)
    data, val = toy_latents(16, 7), toy_latents(8, 8)
    joint = run_class_n_diff(data, tmp_path / "class_n_diff", tmp_path / "class_n_diff_report", params,
                             val_latents=val)
    baseline = run_dit_baseline(data, tmp_path / "dit_baseline", tmp_path / "dit_baseline_report", params,
                                val_latents=val)
    # the DVC metrics/plots live beside the run folder (DVC forbids them inside an out), the models inside it
    assert sorted(p.name for p in joint.report_dir.iterdir()) == [
        "final_metrics.json", "loss_curve.csv", "loss_curve.png", "sample_grid.png"]
    assert joint.report_dir == tmp_path / "class_n_diff_report" and joint.loss_csv.parent == joint.report_dir
    assert not any((joint.run_dir / name).exists() for name in ("loss_curve.png", "loss_curve.csv",
                                                               "final_metrics.json"))
    assert joint.loss_curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert baseline.loss_curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert joint.sample_grid.read_bytes() == (joint.run_dir / "samples/step_00000006.png").read_bytes()
    rows = joint.loss_csv.read_text().splitlines()
    assert rows[0] == "step,loss_total,loss_diff,mse,vb,loss_cls,gamma" and len(rows) == 1 + 3
    assert [int(r.split(",")[0]) for r in rows[1:]] == [2, 4, 6]
    flat = json.loads(joint.final_metrics.read_text())
    assert flat["steps"] == 6 and flat["val_auc"] is not None and flat["loss_cls"] > 0
    last = losses(joint.run_dir, range(6, 7))[0]
    assert flat["loss_diff"] == last["loss_diff"] and flat["loss_cls"] == last["loss_cls"]
    assert json.loads(baseline.final_metrics.read_text())["val_auc"] is None
    assert json.loads(baseline.config.read_text())["joint"]["use_classifier"] is False
    assert baseline.classifier is None and joint.classifier.is_file()
    assert joint.summary["preset"] == "setting4" and baseline.summary["preset"] == "setting1"
    stored = json.loads((joint.run_dir / "summary.json").read_text())
    assert stored["report_dir"] == str(joint.report_dir) and stored["world_size"] == 1 and joint.rank == 0
    with pytest.raises(ValueError, match="lies in the run folder"):
        run_class_n_diff(data, tmp_path / "class_n_diff", tmp_path / "class_n_diff/report", params)


def test_checkpoints_every_minutes_of_work_outside_the_run_folder_last_k_kept(tmp_path: Path) -> None:
    """Checkpoints are resumable state (~7 GB at the real profile), not artifacts: not in the run folder (a DVC
    out), the latest `keep_checkpoints` only, every so many minutes of work (an injected clock, 40 s a reading,
    read at log steps) rather than a step count."""
    data = toy_latents(16, 11)
    params = TrainParams(steps=6, log_every=2, checkpoint_every=None, checkpoint_every_minutes=1, keep_checkpoints=5,
                         validate_every=100, preset="setting1", **TINY)
    readings = iter(range(0, 10_000, 40))
    result = train(data, tmp_path / "run", params, checkpoint_dir=tmp_path / "ckpt", clock=lambda: next(readings))
    # readings: 0 at the start, 40 at step 2, 80 at step 4 (>= 60 s: save, restart at 120), step 6 ends the run
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["step_00000004", "step_00000006"]
    assert result.checkpoints == tmp_path / "ckpt" and not (result.run_dir / "checkpoints").exists()
    # by steps, with the default folder beside the run folder; only the last 2 stay
    by_steps = params.model_copy(update={"checkpoint_every": 1, "checkpoint_every_minutes": None,
                                         "keep_checkpoints": 2})
    other = train(data, tmp_path / "runs" / "other", by_steps)
    assert other.checkpoints == tmp_path / "runs" / "checkpoints" / "other"
    assert sorted(p.name for p in other.checkpoints.iterdir()) == ["step_00000005", "step_00000006"]


def test_checkpoints_an_older_version_left_in_the_run_folder_move_out_and_resume(tmp_path: Path) -> None:
    data = toy_latents(16, 12)
    params = TrainParams(steps=4, log_every=1, checkpoint_every=2, validate_every=100, preset="setting1", **TINY)
    whole = train(data, tmp_path / "whole", params)
    run = tmp_path / "run"
    train(data, run, params, stop_at_step=2, checkpoint_dir=run / "checkpoints")  # the old layout
    resumed = train(data, run, params)
    assert not (run / "checkpoints").exists() and sorted(p.name for p in resumed.checkpoints.iterdir()) == [
        "step_00000002", "step_00000004"]
    assert losses(resumed.run_dir, range(1, 5)) == losses(whole.run_dir, range(1, 5))
    # checkpoints whose run folder is gone (no config.json to check them against) are not resumed
    (run / "config.json").unlink()
    again = train(data, run, params, stop_at_step=1)
    assert [p.name for p in again.checkpoints.iterdir()] == ["step_00000001"]


def test_the_training_stage_keeps_checkpoints_out_of_its_dvc_outs(tmp_path: Path) -> None:
    import yaml

    from pipelines.config import Params
    from pipelines.stages import STAGES
    from training.vae import CodecSpec

    root = Path(__file__).resolve().parents[1]
    params = Params.model_validate({"data_root": str(tmp_path / "data"), "lesions": {"sources": []}, "class_n_diff": {
        "train": {"steps": 2, "log_every": 1, "checkpoint_every": 1, "validate_every": 100, "batch_size": 8, **TINY}}})
    shards = params.path(params.latent_shards.out) / "shards"
    shards.mkdir(parents=True)
    write_toy_shards(shards, {"train": toy_latents(16, 13, (12, 8, 8)), "val": toy_latents(8, 14, (12, 8, 8))}, 20)
    (params.path(params.vae.out)).mkdir(parents=True)
    CodecSpec(kind="haar_wavelet", resolution=16).write(params.path(params.vae.out) / "codec.json")
    outputs = STAGES["dit_baseline"].run(params)
    checkpoints = tmp_path / "data" / "checkpoints" / "dit_baseline"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step_00000001", "step_00000002"]
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in
            yaml.safe_load((root / "dvc.yaml").read_text())["stages"]["dit_baseline"]["outs"]]
    for out in outs:  # dvc.yaml's outs are relative to the project; params' data_root maps data/ here
        out_path = tmp_path / out
        assert out_path != checkpoints and out_path not in checkpoints.parents
    assert outputs.run_dir == tmp_path / "data" / "dit_baseline" and not (outputs.run_dir / "checkpoints").exists()
    assert (root / ".gitignore").read_text().count("data/checkpoints/") == 1


# ---------------------------------------------------------------- the stage command under torchrun

def write_toy_shards(folder: Path, splits: dict[str, LatentSet], per_shard: int) -> None:
    """`splits` as latent shards + manifest.json in `folder`, written by the project's shard writer."""
    import numpy as np

    from training.latent_shards.format import LatentSample
    from training.latent_shards.manifest import FORMAT
    from training.latent_shards.write import write_shard

    rows, tones = [], ("A", "B", "C", "unknown")
    for split, latents in splits.items():
        samples = [LatentSample(key=key, mean=latents.mean[i].numpy().astype(np.float16),
                                std=latents.std[i].numpy().astype(np.float16),
                                meta={"label": int(latents.conditions["label"][i]), "split": split,
                                      "skin_tone_group": tones[int(latents.conditions["skin_tone"][i])]})
                   for i, key in enumerate(latents.keys)]
        for index, start in enumerate(range(0, len(samples), per_shard)):
            info = write_shard(folder / f"{split}-{index:06d}.tar", samples[start:start + per_shard])
            rows.append({"split": split, "shard": info.path.name, "count": info.count, "sha256": info.sha256})
    manifest = {"format": FORMAT, "splits": {s: len(v) for s, v in splits.items()}, "shards": rows}
    (folder / "manifest.json").write_text(json.dumps(manifest))


DDP_TRAIN = {"steps": 6, "batch_size": 8, "log_every": 1, "checkpoint_every": 3, "validate_every": 6,
             "preset": "setting4", "record_samples": True, **TINY}


@pytest.mark.slow
def test_stage_command_under_torchrun_and_accelerate_trains_two_ranks_as_one_process_with_two_accumulation_steps(
        tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    import yaml

    from pipelines.class_n_diff import run_class_n_diff
    from training.latent_shards.read import read_latent_set
    from training.vae import CodecSpec

    root = Path(__file__).resolve().parents[1]
    data = tmp_path / "data"
    shards = data / "latent_shards" / "shards"
    shards.mkdir(parents=True)
    # 12x8x8 latents: what the weight-free Haar codec makes of 16x16 images, so the sample grid decodes for real
    write_toy_shards(shards, {"train": toy_latents(32, 9, (12, 8, 8)), "val": toy_latents(8, 10, (12, 8, 8))}, 20)
    (data / "vae").mkdir()
    codec = CodecSpec(kind="haar_wavelet", resolution=16).write(data / "vae" / "codec.json")
    raw = yaml.safe_load((root / "params.yaml").read_text())  # the project's params, data_root and training shrunk
    raw["data_root"] = str(data)
    raw["class_n_diff"]["train"] = DDP_TRAIN
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    raw["class_n_diff"] |= {"out": "accelerate_run", "report_out": "accelerate_report"}
    (tmp_path / "accelerate.yaml").write_text(yaml.safe_dump(raw))

    stage = ["-m", "pipelines.cli", "class_n_diff_model", "--params"]
    launchers = {  # the commands docs/cluster.md gives, on 2 CPU processes (gloo)
        "params.yaml": [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
        "accelerate.yaml": [str(Path(sys.executable).with_name("accelerate")), "launch", "--multi_gpu",
                            "--num_processes", "2", "--main_process_port", "0", "--num_machines", "1",
                            "--mixed_precision", "no", "--dynamo_backend", "no"]}
    for params_file, launcher in launchers.items():
        done = subprocess.run([*launcher, *stage, str(tmp_path / params_file)], capture_output=True, text=True,
                              timeout=600, cwd=root, env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})
        assert done.returncode == 0, f"{launcher[:3]}: {done.stderr[-3000:]}"
    run, report = data / "class_n_diff", data / "class_n_diff_report"
    assert json.loads((run / "config.json").read_text())["world_size"] == 2
    assert sorted(p.name for p in report.iterdir()) == [
        "final_metrics.json", "loss_curve.csv", "loss_curve.png", "sample_grid.png"]
    assert json.loads((run / "summary.json").read_text())["world_size"] == 2

    params = TrainParams(**DDP_TRAIN)
    single = run_class_n_diff(shards, tmp_path / "single", tmp_path / "single_report",
                              params.model_copy(update={"grad_accum": 2}), codec_spec=codec)
    # the samples: per step, the ranks' micro-batches are disjoint and together the single process's global
    # batch (rank r's = the single process's micro-batch r), which is the data order's batch of that step
    seen, alone = read_samples_seen(run), read_samples_seen(single.run_dir)
    keys, order = read_latent_set(sorted(shards.glob("train-*.tar"))).keys, DataOrder(32, 8, seed=0)
    for step in range(1, 7):
        ranks = [seen[r][(step, 0)] for r in (0, 1)]
        assert len(ranks[0]) == len(ranks[1]) == 4 and not set(ranks[0]) & set(ranks[1])
        assert ranks == [alone[0][(step, 0)], alone[0][(step, 1)]]
        assert ranks[0] + ranks[1] == [keys[i] for i in order.global_batch(step - 1).tolist()]
    assert sorted(seen) == [0, 1] and all(len(batches) == 6 for batches in seen.values())
    # the numbers: DDP over 2 ranks == 2-step gradient accumulation in one process
    a, b = losses(run, range(1, 7)), losses(single.run_dir, range(1, 7))
    assert len(a) == len(b) == 6  # one writer (rank 0), averaged over both ranks
    for x, y in zip(a, b, strict=True):
        assert x == pytest.approx(y, rel=1e-4, abs=1e-6)
    left, right = load_file(str(run / "dit.safetensors")), load_file(str(single.run_dir / "dit.safetensors"))
    for key in left:
        torch.testing.assert_close(left[key], right[key], rtol=1e-4, atol=1e-6, msg=key)
    assert len((report / "loss_curve.csv").read_text().splitlines()) == 1 + 6
    assert json.loads((report / "final_metrics.json").read_text())["steps"] == 6
    # `accelerate launch` runs the same command: the same samples per rank and bit-identical weights
    launched = data / "accelerate_run"
    assert json.loads((launched / "config.json").read_text())["world_size"] == 2
    assert read_samples_seen(launched) == seen and (data / "accelerate_report" / "final_metrics.json").is_file()
    other = load_file(str(launched / "dit.safetensors"))
    assert all(torch.equal(left[key], other[key]) for key in left)
