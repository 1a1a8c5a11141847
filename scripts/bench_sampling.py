"""Sampler speed and quality on the trained demo model: DDPM-250 vs DPM-Solver++ 20/25 (issues 5 and 13).

Uses the run folders the pipeline wrote (`data/class_n_diff`, `data/vae`, `data/lesions`). Quality is the
synthetic-quality audit's `fid_heldout` (pipelines/generation_report): a reference network trained on the real
training images only, held-out real images (val + test) split into halves A and B; every sampler draws the same
`--samples` latents (same seeds) asked with half A's label x skin-tone conditions, and FID(samples, B) is the mean
over |A|-sized chunks. Its noise is the spread of those chunk FIDs; FID(A, B) gives the scale. Sampling uses the
synthetic_shards guidance from params.yaml. Appends/replaces the section "Sampling" in docs/benchmarks.md.

    .venv/bin/python scripts/bench_sampling.py [--samples 512]
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipelines.config import load_params
from pipelines.generation_report import quality as q
from pipelines.generation_report.images import real_image_set
from pipelines.generation_report.reference_network import ReferenceTraining, train_reference_network
from pipelines.generation_report.synthetic_quality import _features, load_all
from pipelines.trained_models import TrainedRun, open_codec_of
from training.conditions import encode
from training.sampling.benchmark import benchmark_samplers
from training.sampling.params import SamplingParams

SECTION = "## Sampling"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args()
    torch.manual_seed(0)
    params = load_params()
    quality = params.generation_report.quality
    trained = TrainedRun(params.path(params.class_n_diff.out))
    model, version = trained.dit_ema()
    codec = open_codec_of(params.path(params.vae.out), "cpu")
    lesions = pd.read_parquet(params.path(params.lesions.out) / "lesions.parquet")
    side = params.vae.resolution
    train_set = real_image_set(lesions, Path(params.data_root), "train", side)
    heldout_rows = lesions[lesions["split"].isin(["val", "test"])].assign(split="heldout")
    heldout_set = real_image_set(heldout_rows, Path(params.data_root), "heldout", side)
    train_images, heldout_images = load_all(train_set), load_all(heldout_set)
    network = train_reference_network(
        train_images, train_set.attributes["label"].to_numpy(), train_set.attributes["skin_tone_group"].to_numpy(),
        ReferenceTraining(quality.reference_steps, quality.reference_batch_size, seed=quality.seed))
    heldout_features = _features(network, heldout_images)
    attributes = heldout_set.attributes.reset_index(drop=True)
    halves = q.split_halves(attributes, quality.seed)
    # Whole chunks of |A|, at least --samples in all.
    asked = pd.concat([attributes.iloc[halves.a]] * math.ceil(args.samples / len(halves.a)), ignore_index=True)
    cond = {"label": torch.tensor([encode("label", v) for v in asked["label"]]),
            "skin_tone": torch.tensor([encode("skin_tone", v) for v in asked["skin_tone_group"]])}
    shape = (model.config.in_channels, *model.config.input_size)
    guidance = dict(params.synthetic_shards.sampling.guidance)
    configs = [SamplingParams(sampler="ddpm", steps=250, batch_size=64, guidance=guidance),
               SamplingParams(sampler="dpmsolver++", steps=25, batch_size=64, guidance=guidance),
               SamplingParams(sampler="dpmsolver++", steps=20, batch_size=64, guidance=guidance)]
    rows = benchmark_samplers(model, cond, shape, configs)
    lines = []
    for row in rows:
        with torch.no_grad():
            images = codec.decode(row["latents"]).clamp(-1, 1)
        uint8 = ((images.permute(0, 2, 3, 1).numpy() + 1) * 127.5).round().astype(np.uint8)
        scores = q.fid_scores(_features(network, uint8), heldout_features, halves)
        chunks = np.array(scores["fid_heldout_chunks"])
        row |= {"fid_heldout": scores["fid_heldout"], "chunk_sd": float(chunks.std(ddof=1)) if len(chunks) > 1
                else float("nan"), "chunks": len(chunks), "fid_real_reference": scores["fid_real_reference"]}
        lines.append(f"| {row['sampler']} | {row['steps']} | {row['network_evaluations_per_image']} | "
                     f"{row['images_per_second']:.2f} | {row['fid_heldout']:.2f} ± "
                     f"{row['chunk_sd'] / math.sqrt(row['chunks']):.2f} (chunk SD {row['chunk_sd']:.2f}) |")
    base = rows[0]
    reduction = base["network_evaluations_per_image"] / rows[2]["network_evaluations_per_image"]
    noise = math.hypot(base["chunk_sd"] / math.sqrt(base["chunks"]), rows[2]["chunk_sd"] / math.sqrt(rows[2]["chunks"]))
    verdict = ("within" if abs(rows[2]["fid_heldout"] - base["fid_heldout"]) <= 2 * noise else "outside")
    text = "\n".join([
        SECTION, "",
        f"`scripts/bench_sampling.py`, {datetime.date.today()}. Machine: {platform.machine()} "
        f"{platform.processor() or 'CPU'}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, no GPU "
        f"(none lent to this task); torch {torch.__version__}. Model: the demo's EMA Class-N-Diff DiT "
        f"({params.class_n_diff.train.model} on {shape} latents, version {version[:12]}), {len(asked)} samples "
        f"(the same seeds for every sampler) asked with held-out half A's label x skin-tone conditions, "
        f"guidance {guidance}, "
        f"decoded at {side} px. Quality: the synthetic-quality audit's held-out FID in the real-only reference "
        f"network's features (not comparable with Inception FIDs), mean of {rows[0]['chunks']} chunks of "
        f"{len(halves.a)} ± its standard error; real-vs-real FID(A, B) = {base['fid_real_reference']:.2f}.", "",
        "| sampler | steps | network evaluations / image | images/s | fid_heldout |", "|---|---|---|---|---|",
        *lines, "",
        f"DPM-Solver++ at 20 steps uses {reduction:.1f}x fewer network evaluations than DDPM-250, and its held-out FID "
        f"is {verdict} twice the combined standard error ({2 * noise:.2f}) of DDPM-250's "
        f"({rows[2]['fid_heldout']:.2f} vs {base['fid_heldout']:.2f}).", ""])
    current = args.out.read_text() if args.out.is_file() else "# Benchmarks\n"
    pattern = re.compile(rf"{re.escape(SECTION)}\n.*?(?=\n## |\Z)", re.S)
    current = pattern.sub(text.rstrip("\n"), current) if SECTION in current else current.rstrip("\n") + "\n\n" + text
    args.out.write_text(current if current.endswith("\n") else current + "\n")
    print(text)


if __name__ == "__main__":
    main()
