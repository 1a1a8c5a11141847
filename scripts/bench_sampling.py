"""Sampler speed and quality on the trained demo model (issue 5 §4): DDPM-250 vs DPM-Solver++ 20/25.

Uses the run folders the pipeline wrote (`data/class_n_diff`, `data/vae`, `data/lesions`). Samples the same
conditions (the real training images' label x skin tone) with each sampler, decodes with the codec, and
computes FID against the real training images with the project's offline feature network (the joint
latent classifier's pooled features); appends the section "Sampling" to docs/benchmarks.md.

    .venv/bin/python scripts/bench_sampling.py [--samples 128]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipelines.config import load_params
from pipelines.generation_report.feature_networks import ClassifierFeatures
from pipelines.generation_report.fid import extract_features, fid
from pipelines.latent_shards.preprocess import load_images
from pipelines.trained_models import TrainedRun, open_codec_of
from training.conditions import encode
from training.sampling.benchmark import benchmark_samplers
from training.sampling.params import SamplingParams

SECTION = "## Sampling"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args()
    torch.manual_seed(0)
    params = load_params()
    trained = TrainedRun(params.path(params.class_n_diff.out))
    model, version = trained.dit_ema()
    codec = open_codec_of(params.path(params.vae.out), "cpu")
    features = ClassifierFeatures(codec.encode, trained.joint_classifier())
    lesions = pd.read_parquet(params.path(params.lesions.out) / "lesions.parquet")
    train = lesions[lesions["split"] == "train"]
    picks = train.sample(n=args.samples, replace=len(train) < args.samples, random_state=0)
    cond = {"label": torch.tensor([encode("label", v) for v in picks["label"]]),
            "skin_tone": torch.tensor([encode("skin_tone", v) for v in picks["skin_tone_group"]])}
    shape = (model.config.in_channels, *model.config.input_size)
    configs = [SamplingParams(sampler="ddpm", steps=250, batch_size=64),
               SamplingParams(sampler="dpmsolver++", steps=25, batch_size=64),
               SamplingParams(sampler="dpmsolver++", steps=20, batch_size=64)]
    rows = benchmark_samplers(model, cond, shape, configs)
    side = params.vae.resolution
    real = load_images([Path(params.data_root) / p for p in train["image_path"]], side)
    real_features = extract_features(features, [real[i:i + 64] for i in range(0, len(real), 64)])
    lines = []
    for row in rows:
        with torch.no_grad():
            images = codec.decode(row["latents"]).clamp(-1, 1)
        uint8 = ((images.permute(0, 2, 3, 1).numpy() + 1) * 127.5).round().astype(np.uint8)
        synthetic = extract_features(features, [uint8[i:i + 64] for i in range(0, len(uint8), 64)])
        row["fid"] = fid(real_features, synthetic)
        lines.append(f"| {row['sampler']} | {row['steps']} | {row['network_evaluations_per_image']} | "
                     f"{row['images_per_second']:.2f} | {row['fid']:.2f} |")
    base = rows[0]
    reduction = base["network_evaluations_per_image"] / rows[2]["network_evaluations_per_image"]
    text = "\n".join([
        SECTION, "",
        f"`scripts/bench_sampling.py`, {datetime.date.today()}. Machine: {platform.machine()} "
        f"{platform.processor() or 'CPU'}, {torch.get_num_threads()} torch threads, no GPU (none lent to "
        f"this task); torch {torch.__version__}. Model: the demo's EMA DiT ({model.config.extra.get('name', '')}"
        f" {shape}, version {version[:12]}), {args.samples} samples with the training set's label x skin-tone "
        f"conditions, decoded at {side} px. FID: the joint latent classifier's pooled features against the "
        f"{len(train)} real training images (offline network: not comparable to Inception FIDs; with "
        f"{args.samples} samples FID is biased upwards — compare rows, not with the paper).", "",
        "| sampler | steps | network evaluations / image | images/s | FID |", "|---|---|---|---|---|", *lines, "",
        f"DPM-Solver++ at 20 steps uses {reduction:.1f}x fewer evaluations than DDPM-250 (goal ≥ 10x at the "
        f"250-step quality).", ""])
    current = args.out.read_text() if args.out.is_file() else "# Benchmarks\n"
    pattern = re.compile(rf"{re.escape(SECTION)}\n.*?(?=\n## |\Z)", re.S)
    current = pattern.sub(text.rstrip("\n"), current) if SECTION in current else current.rstrip("\n") + "\n\n" + text
    args.out.write_text(current if current.endswith("\n") else current + "\n")
    print(text)


if __name__ == "__main__":
    main()
