"""The profiles (pipelines/profiles.py): the real profile resolves to the papers' values, every `real profile:` note
of params.yaml is one of its keys, applying it rewrites only those values, and the CLI shows and writes it."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from pipelines.cli import main
from pipelines.config import load_params
from pipelines.profiles import REAL, apply_profile, profile_changes, write_profile
from training.dit import dit_config
from training.train import micro_batch_size

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"


def test_the_real_profile_resolves_to_the_papers_values() -> None:
    params = load_params(PARAMS, profile="real")
    # latents (METHOD.md §1; Class-N-Diff §IV-A): 256-px images through the SD VAE -> 4x32x32
    assert (params.vae.kind, params.vae.pretrained, params.vae.resolution) == (
        "autoencoder_kl", "stabilityai/sd-vae-ft-ema", 256)
    assert params.vae.resolution // 8 == 32  # the SD VAE downsamples 8x: 4x32x32 latents
    # the DiT (METHOD.md §2): DiT-L/4 = 24 blocks, hidden 1024, 16 heads, patch 4; the paper's cross-attention
    train = params.class_n_diff.train
    dit = dit_config(train.model)
    assert (train.model, dit.depth, dit.hidden_size, dit.num_heads, dit.patch_size) == ("DiT-L/4", 24, 1024, 16, 4)
    assert train.conditioning == "cross_attn"
    # optimisation (§IV-A): global batch 8, lr 1e-4, 200k steps; EMA 0.9999 without the demo's warm-up
    assert (train.batch_size, train.grad_accum, train.lr, train.steps) == (8, 1, 1e-4, 200_000)
    assert (train.ema_decay, train.ema_warmup, train.weight_decay) == (0.9999, False, 0.0)
    assert train.cpu_threads is None and train.validate_every == 10_000 and train.sample_every == 20_000
    assert train.classifier_backbone == "resnet101"  # §III-A
    assert params.class_n_diff.side_by_side is False
    # sampling (§III-C): 250 DDPM steps, no guidance
    sampling = params.synthetic_shards.sampling
    assert (sampling.sampler, sampling.steps, sampling.guidance) == ("ddpm", 250, {})
    # downstream classifiers at their ImageNet size, the paper's blur on every image, one run per GPU
    downstream = params.downstream_classifiers
    assert (downstream.backbone, downstream.image_size, downstream.batch_size, downstream.lr) == (
        "resnet50", 224, 64, 1e-4)
    assert (downstream.blur_probability, downstream.parallel_runs, downstream.torch_threads) == (1.0, 1, None)
    assert (downstream.num_workers, downstream.cache_images, downstream.max_steps) == (8, False, 18_100)
    # fairness thresholds and the diffusion classifier's full vote
    fairness = params.fairness_report
    assert (fairness.check.max_sensitivity_gap, fairness.check.max_auc_gap) == (0.1, 0.1)
    assert (fairness.min_group_size, fairness.bootstrap_samples) == (30, 2000)
    report = params.diffusion_classifier_report
    assert (report.classifier.n_trials, report.max_trials_for_figures, report.min_group_size) == (501, 501, 30)
    assert (report.classifier.counterfactual_steps, report.bootstrap_samples) == (50, 2000)


def test_the_demo_stays_the_default() -> None:
    demo = load_params(PARAMS)
    assert load_params(PARAMS, profile="demo") == demo
    assert (demo.class_n_diff.train.model, demo.vae.resolution, demo.class_n_diff.train.classifier_backbone) == (
        "DiT-T/2", 64, "resnet10t")
    assert len(profile_changes(yaml.safe_load(PARAMS.read_text()), "real")) == len(REAL)  # nothing is real yet
    # the profile touches its keys and nothing else
    raw = yaml.safe_load(PARAMS.read_text())
    real = apply_profile(raw, "real")
    for key in REAL:
        *parents, leaf = key.split(".")
        a, b = raw, real
        for part in parents:
            a, b = a[part], b[part]
        del a[leaf], b[leaf]
    assert real == raw
    with pytest.raises(ValueError, match="unknown profile 'paper'"):
        load_params(PARAMS, profile="paper")


def _real_profile_notes(text: str) -> dict[str, str]:
    """{dotted key: the first word after `real profile:`} of each params.yaml line noting one."""
    notes, stack = {}, []  # stack of (indent, key)
    for number, line in enumerate(text.splitlines(), 1):
        match = re.match(r"^(\s*)(?:-\s+)?([A-Za-z_]\w*):", line)
        comment = line.split(" #", 1)[1] if " #" in line else line.lstrip()[1:] if line.lstrip().startswith("#") else ""
        noted = re.search(r"real profile:\s*(\S+)", comment, flags=re.IGNORECASE)
        if match is None:
            assert noted is None, f"params.yaml:{number}: a 'real profile:' note not on a key's line: {line!r}"
            continue
        indent = len(match.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match.group(2)))
        if noted:
            notes[".".join(key for _, key in stack)] = noted.group(1).rstrip(",;)")
    return notes


def test_every_real_profile_note_in_params_yaml_is_the_profiles_value() -> None:
    notes = _real_profile_notes(PARAMS.read_text())
    assert sorted(notes) == sorted(REAL), "params.yaml notes and pipelines/profiles.REAL name different keys"
    for key, word in notes.items():
        assert yaml.safe_load(word) == REAL[key], f"params.yaml {key}: note says {word}, the profile {REAL[key]!r}"


def test_writing_the_profile_changes_only_its_values_and_keeps_the_comments(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    shutil.copy(PARAMS, path)
    before = path.read_text().splitlines()
    changes = write_profile(path, "real")
    after = path.read_text().splitlines()
    assert [c.key for c in changes] == list(REAL)
    assert load_params(path) == load_params(PARAMS, profile="real")  # what DVC and Dagster now read
    assert len(after) == len(before)
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert len(changed) == len(REAL)  # one line per value
    comment = re.compile(r"#.*$")
    assert all(comment.search(a).group(0) == comment.search(b).group(0) for a, b in changed)
    assert write_profile(path, "real") == []  # applying it again changes nothing


def test_cli_prints_the_real_configuration_and_writes_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "params.yaml"
    shutil.copy(PARAMS, path)
    assert main(["config", "--profile", "real", "--params", str(path)]) == 0
    out, err = capsys.readouterr()
    shown = json.loads(out)
    assert shown["class_n_diff"]["train"]["model"] == "DiT-L/4" and shown["vae"]["resolution"] == 256
    assert f"profile real: {len(REAL)} value(s) would change" in err
    assert "class_n_diff.train.ema_decay: 0.999 -> 0.9999" in err and "lesions.sources read the demo images" in err
    assert path.read_text() == PARAMS.read_text()  # printing writes nothing
    assert main(["class_n_diff_model", "--dry-run", "--profile", "real", "--params", str(path)]) == 0
    assert json.loads(capsys.readouterr().out) == shown
    with pytest.raises(SystemExit):  # a stage runs what the file says: no profile behind DVC's back
        main(["class_n_diff_model", "--profile", "real", "--params", str(path)])
    assert "apply the profile first" in capsys.readouterr().err
    assert main(["config", "--profile", "real", "--write", "--params", str(path)]) == 0
    assert f"{len(REAL)} value(s) set in" in capsys.readouterr().out
    assert load_params(path).class_n_diff.train.model == "DiT-L/4"


def _launcher_processes(text: str) -> list[tuple[str, int]]:
    """(command, processes) of each torchrun / accelerate launch command with literal counts in a document."""
    text = text.replace("\\\n", " ")
    found = []
    for command in re.findall(r"(?:torchrun|accelerate launch)[^\n`]*", text):
        nodes = re.search(r"--nnodes[ =](\d+)", command)
        per_node = re.search(r"--nproc_per_node[ =](\d+)", command)
        total = re.search(r"--num_processes[ =](\d+)", command)
        if per_node:
            found.append((command, int(nodes.group(1) if nodes else 1) * int(per_node.group(1))))
        elif total:
            found.append((command, int(total.group(1))))
    return found


def test_documented_launchers_split_the_real_global_batch() -> None:
    """docs/cluster.md's multi-node example ran 2 x 8 processes on the global batch 8: refused by the check."""
    train = load_params(PARAMS, profile="real").class_n_diff.train
    commands = [c for doc in ("docs/cluster.md", "README.md") for c in _launcher_processes((ROOT / doc).read_text())]
    assert any("--nnodes" in command for command, _ in commands)  # the multi-node example is among them
    for command, processes in commands:
        assert micro_batch_size(train.batch_size, train.grad_accum, processes) >= 1, command
    assert micro_batch_size(8, 1, 8) == 1 and micro_batch_size(8, 2, 2) == 2
    with pytest.raises(ValueError, match="batch_size 8 must divide by grad_accum 1 x 16 processes"):
        micro_batch_size(8, 1, 16)
