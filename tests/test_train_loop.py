"""The training loop: exact resume, learning on a tiny latent set, the run folder, loud failure on NaN."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from training.class_n_diff.data_order import DataOrder
from training.class_n_diff.params import TrainParams
from training.dit import load_dit
from training.latent_classifier import load_latent_classifier
from training.latent_set import LatentSet
from training.train import TrainingDiverged, train


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
                         validate_every=7, **TINY)
    data, val = toy_latents(24, 0), toy_latents(8, 1)
    whole = train(data, tmp_path / "whole", params, val_set=val)
    partial = train(data, tmp_path / "resumed", params, val_set=val, stop_at_step=7)
    assert not partial.summary["completed"] and partial.summary["steps"] == 7
    assert (tmp_path / "resumed/checkpoints/step_00000007/classifier_grad.safetensors").is_file()
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
    # resuming a finished run changes nothing; resuming with other params is refused
    again = train(data, tmp_path / "resumed", params, val_set=val)
    assert again.summary["final"]["loss_diff"] == resumed.summary["final"]["loss_diff"]
    with pytest.raises(ValueError, match=r"\['lr'\]"):
        train(data, tmp_path / "resumed", params.model_copy(update={"lr": 3e-4}))


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
                              "steps_per_epoch": 2, "label_counts": [8, 8]}
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
    joint = run_class_n_diff(data, tmp_path / "class_n_diff", params, val_latents=val)
    baseline = run_dit_baseline(data, tmp_path / "dit_baseline", params, val_latents=val)
    assert joint.loss_curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert baseline.loss_curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = joint.loss_csv.read_text().splitlines()
    assert rows[0] == "step,loss_total,loss_diff,mse,vb,loss_cls,gamma" and len(rows) == 1 + 3
    flat = json.loads(joint.final_metrics.read_text())
    assert flat["steps"] == 6 and flat["val_auc"] is not None and flat["loss_cls"] > 0
    assert json.loads(baseline.final_metrics.read_text())["val_auc"] is None
    assert json.loads(baseline.config.read_text())["joint"]["use_classifier"] is False
    assert baseline.classifier is None and joint.classifier.is_file()
    assert joint.summary["preset"] == "setting4" and baseline.summary["preset"] == "setting1"


DDP_SCRIPT = """
import sys
sys.path.insert(0, {root!r})
from tests.test_train_loop import DDP_PARAMS, toy_latents
from training.train import train
train(toy_latents(32, 9), {out!r}, DDP_PARAMS, val_set=toy_latents(8, 10))
"""
DDP_PARAMS = TrainParams(steps=6, log_every=1, checkpoint_every=3, validate_every=6, preset="setting4", **TINY)


@pytest.mark.slow
def test_two_processes_under_torchrun_train_as_one_with_two_accumulation_steps(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    root = str(Path(__file__).resolve().parents[1])
    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_SCRIPT.format(root=root, out=str(tmp_path / "ddp")))
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           "29533", str(script)], capture_output=True, text=True, timeout=600, cwd=root,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "ddp/config.json").read_text())["world_size"] == 2
    single = train(toy_latents(32, 9), tmp_path / "single", DDP_PARAMS.model_copy(update={"grad_accum": 2}),
                   val_set=toy_latents(8, 10))
    a, b = losses(tmp_path / "ddp", range(1, 7)), losses(single.run_dir, range(1, 7))
    assert len(a) == len(b) == 6  # one writer (rank 0), averaged over both ranks
    for x, y in zip(a, b, strict=True):
        assert x == pytest.approx(y, rel=1e-4, abs=1e-6)
    left, right = load_file(str(tmp_path / "ddp/dit.safetensors")), load_file(str(single.run_dir / "dit.safetensors"))
    for key in left:
        torch.testing.assert_close(left[key], right[key], rtol=1e-4, atol=1e-6, msg=key)
