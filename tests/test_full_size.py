"""The real profile at the papers' model sizes, every stage in its own process (scripts/full_size_smoke.py).

A handful of 256-px images through an AutoencoderKL of sd-vae-ft-ema's configuration (random weights, loaded as
`vae.pretrained` from a folder), DiT-L/4 in both conditioning modes, the ResNet-101 latent classifier, resnet50 at
224 px; 2 optimizer steps per training stage, a preempted and resumed Class-N-Diff run, 2-step DDPM sampling,
the fairness report. ~13 min on 2 shared CPU cores, 11.2 GiB peak memory (one stage at a time), ~22 GB of disk
until the checkpoints are removed at the end (docs/benchmarks.md "Real profile at paper size, CPU").
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from safetensors import safe_open

from scripts.full_size_smoke import OPTIONAL, PREEMPT_AT, SD_VAE_CONFIG, STAGES, TRAIN_STEPS, run_smoke

pytestmark = [pytest.mark.slow, pytest.mark.full_size]  # not in `make test` (pyproject addopts): ~13 min

HIDDEN, DEPTH = 1024, 24  # DiT-L (DiT paper Table 1)
DIT_L_PARAMETERS = 458e6  # DiT paper Table 4, DiT-L/4 (adaLN-Zero)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[Path, dict]:
    work = tmp_path_factory.mktemp("full_size")
    results = run_smoke(work, progress=lambda line: None)
    yield work, results
    shutil.rmtree(work, ignore_errors=True)  # ~10 GB of full-size weights


def parameters(path: Path) -> int:
    with safe_open(str(path), "pt") as weights:
        total = 0
        for name in weights.keys():  # noqa: SIM118  (safe_open has no __iter__)
            count = 1
            for side in weights.get_slice(name).get_shape():
                count *= side
            total += count
        return total


def test_every_stage_ran_in_its_own_process(smoke):
    _, results = smoke
    assert "failed" not in results, results.get("failed")
    assert [row["name"] for row in results["stages"]] == [name for name, stage, *_ in STAGES if stage not in OPTIONAL]
    assert all(row["exit"] == 0 and row["peak_rss_gib"] > 0.3 for row in results["stages"])


def test_codec_is_the_sd_vae_configuration_loaded_from_a_folder(smoke):
    work, _ = smoke
    codec = json.loads((work / "data/vae/codec.json").read_text())
    assert codec["kind"] == "autoencoder_kl" and codec["resolution"] == 256
    assert codec["source"] == str(work / "data/pretrained/sd-vae-ft-ema")  # vae.pretrained, resolved as a folder
    record = json.loads((work / "data/vae/model/model.json").read_text())
    assert record["pretrained"] == "pretrained/sd-vae-ft-ema"
    assert {k: record["config"][k] for k in SD_VAE_CONFIG} == SD_VAE_CONFIG
    assert record["config"]["scaling_factor"] == 0.18215
    manifest = json.loads((work / "data/latent_shards/shards/manifest.json").read_text())
    lesions = pd.read_parquet(work / "data/lesions/lesions.parquet")
    assert manifest["latent_shape"] == [4, 32, 32] and manifest["scaling_factor"] == 0.18215
    assert sum(s["count"] for s in manifest["shards"]) == len(lesions)


def test_dit_l4_in_both_modes_and_resnet101_at_paper_size(smoke):
    work, _ = smoke
    joint = json.loads((work / "data/class_n_diff/dit_config.json").read_text())
    baseline = json.loads((work / "data/dit_baseline/dit_config.json").read_text())
    for config, mode in ((joint, "cross_attn"), (baseline, "adaln")):
        assert (config["depth"], config["hidden_size"], config["num_heads"], config["patch_size"]) == (24, 1024, 16, 4)
        assert config["conditioning"] == mode and config["input_size"] == [32, 32]
    adaln = parameters(work / "data/dit_baseline/dit_ema.safetensors")
    cross = parameters(work / "data/class_n_diff/dit_ema.safetensors")
    assert adaln == pytest.approx(DIT_L_PARAMETERS, rel=0.005)
    # the modes differ only in how conditions enter: adaLN-Zero's modulation, Linear(d, 6d) per block and Linear(d,
    # 2d) before the output, against cross-attention's q, k, v, out per block and the four affine LayerNorms of the
    # cross-attention block (adaLN's norms have no parameters)
    d = HIDDEN
    modulation = DEPTH * (6 * d * d + 6 * d) + 2 * d * d + 2 * d
    assert adaln - cross == modulation - DEPTH * (4 * d * d + 4 * d) - DEPTH * 4 * 2 * d
    classifier = json.loads((work / "data/class_n_diff/classifier_config.json").read_text())
    assert classifier["backbone"] == "resnet101" and classifier["norm"] == "group"
    assert parameters(work / "data/class_n_diff/classifier.safetensors") == pytest.approx(43.5e6, rel=0.01)
    assert not (work / "data/dit_baseline/classifier.safetensors").exists()


def test_preempted_class_n_diff_run_resumed_from_its_checkpoint(smoke):
    work, results = smoke
    preempted, resumed = (row for row in results["stages"] if row["stage"] == "class_n_diff_model")
    assert preempted["checkpoint"] == f"step_{PREEMPT_AT:08d}"
    dit = parameters(work / "data/class_n_diff/dit.safetensors")
    classifier = parameters(work / "data/class_n_diff/classifier.safetensors")
    # fp32: DiT weights, EMA and AdamW's two moments (16 B per parameter); classifier weights and moments (12 B),
    # its pending gradient when it steps every few steps (here: every step, none)
    assert preempted["checkpoint_bytes"] == pytest.approx(16 * dit + 12 * classifier, rel=0.01)
    assert f"(step {PREEMPT_AT})" in Path(resumed["log"]).read_text()  # "resuming ... from step_00000001 (step 1)"
    lines = [json.loads(ln) for ln in (work / "data/class_n_diff/metrics.jsonl").read_text().splitlines()]
    assert [ln["step"] for ln in lines if "kind" not in ln] == list(range(1, TRAIN_STEPS + 1))
    for run in ("class_n_diff", "dit_baseline"):
        summary = json.loads((work / "data" / run / "summary.json").read_text())
        assert summary["completed"] and summary["steps"] == TRAIN_STEPS and summary["model"] == "DiT-L/4"
    # a training process holds at least DiT + EMA + AdamW moments + gradients in fp32 (20 B per DiT parameter)
    assert preempted["peak_rss_gib"] * 2**30 > 20 * dit


def test_ddpm_samples_meet_the_plan_and_every_classifier_is_scored(smoke):
    work, _ = smoke
    plan = pd.read_parquet(work / "data/generation_plan/plan.parquet")
    report = json.loads((work / "data/synthetic_shards/report.json").read_text())
    kept = {c["cell"]: c["kept"] for c in report["cells"]}
    assert kept == {c: n for c, n in zip(plan["cell"], plan["to_generate"], strict=True) if n > 0}
    downstream = json.loads((work / "data/downstream_classifiers/summary.json").read_text())
    assert (downstream["backbone"], downstream["image_size"], downstream["max_steps"]) == ("resnet50", 224, 2)
    assert set(downstream["classifiers"]) == {"baseline", "oversampled", "augmented"}
    assert parameters(work / "data/downstream_classifiers/runs/baseline/model.safetensors") == pytest.approx(
        23.5e6, rel=0.01)
    metrics = json.loads((work / "data/fairness_report/metrics.json").read_text())
    assert set(metrics) == {"baseline", "oversampled", "augmented", "class_n_diff"}
