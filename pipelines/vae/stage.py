"""The `vae` stage: the codec every later stage encodes/decodes with, and how well it reconstructs.

- kind haar_wavelet: nothing to load or fit (seeds/002's weight-free transform).
- kind autoencoder_kl + `pretrained`: a hub id or local folder, loaded with `from_pretrained`.
- kind autoencoder_kl, no `pretrained` (the demo): fit a small AutoencoderKL on the train split, save it
  as safetensors + config.json in `<out>/model`, and load it back through the same `from_pretrained`.
  A model whose fit key (fit params, resolution, image policy, train image hashes) is unchanged is
  reused, so re-running the stage keeps the encoder id and with it every cached latent.
Writes `<out>/codec.json` (read by `latent_shards` and later stages), `report.json`, `reconstructions.png`
and always `<out>/model` (a DVC out, and a dep of the stages that decode): the fitted weights, or for a
pretrained VAE / the Haar transform a `model.json` naming the codec with its resolved config and a hash of its
weights, so the out exists for every codec and changes exactly when the codec does (no stale demo weights).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipelines.atomic_files import write_json
from pipelines.latent_shards.decode import decode_chunks
from pipelines.latent_shards.preprocess import POLICY, to_tensor, to_uint8
from pipelines.vae.grid import reconstruction_grid
from pipelines.vae.params import VaeParams
from training.vae import CodecSpec, open_codec
from training.vae.fit import FitSettings, SmallAutoencoderConfig, fit_autoencoder, latent_normalisation
from training.vae.fit import small_autoencoder as build_small_autoencoder
from training.vae.quality import psnr, ssim, to_unit

log = logging.getLogger(__name__)

GRID_IMAGES = 8
MODEL_RECORD = "model.json"  # <out>/model/model.json when the stage fits nothing
EVAL_BATCH = 16


@dataclass(frozen=True)
class VaeOutputs:
    codec: Path  # codec.json
    model: Path  # <out>/model: the fitted weights (demo), else model.json naming the codec
    report: Path
    grid: Path
    summary: dict


def output_paths(out_dir: Path) -> dict[str, Path]:
    return {"codec": out_dir / "codec.json", "model": out_dir / "model", "report": out_dir / "report.json",
            "grid": out_dir / "reconstructions.png"}


def load_split_images(lesions: pd.DataFrame, data_root: Path, resolution: int, workers: int) -> np.ndarray:
    paths = [data_root / p for p in lesions["image_path"]]
    chunks = decode_chunks(paths, resolution, 16, workers, list(lesions["sha256"]))
    return np.concatenate(list(chunks)) if len(paths) else np.zeros((0, resolution, resolution, 3), np.uint8)


def _fit_key(params: VaeParams, train: pd.DataFrame) -> str:
    fit = params.fit.model_dump(mode="json", exclude={"threads"})  # a speed setting, not what is fitted
    payload = json.dumps({"fit": fit, "resolution": params.resolution,
                          "policy": POLICY, "images": sorted(train["sha256"])}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def fit_small_autoencoder(lesions: pd.DataFrame, data_root: Path, model_dir: Path, params: VaeParams) -> dict:
    """Fit on the train split and save to `model_dir` (replaced atomically); reuse it if the fit key matches."""
    train = lesions[lesions["split"] == "train"].sort_values("isic_id")
    if train.empty:
        raise ValueError("vae: the lesions table has no train-split images to fit the demo AutoencoderKL on")
    key = _fit_key(params, train)
    stamp = model_dir / "fit.json"
    if stamp.is_file() and json.loads(stamp.read_text()).get("fit_key") == key:
        log.info("vae: reusing %s (fit key unchanged)", model_dir)
        return json.loads(stamp.read_text())
    images = to_tensor(load_split_images(train, data_root, params.resolution, params.decode_workers))
    fit = params.fit
    model = build_small_autoencoder(SmallAutoencoderConfig(tuple(fit.block_out_channels), fit.layers_per_block,
                                                           fit.latent_channels, fit.norm_num_groups),
                                    params.resolution, seed=fit.seed)
    history = fit_autoencoder(model, images, FitSettings(fit.steps, fit.batch_size, fit.learning_rate,
                                                         fit.kl_weight, fit.seed, fit.threads))
    shift, scale = latent_normalisation(model, images)
    model.register_to_config(shift_factor=shift, scaling_factor=scale)
    record = {"fit_key": key, "train_images": len(train), "steps": fit.steps, "seconds": round(history.seconds, 1),
              "final_loss": history.losses[-1], "scaling_factor": scale, "shift_factor": shift}

    def fill(folder: Path) -> None:
        model.save_pretrained(folder, safe_serialization=True)
        (folder / "fit.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")

    replace_folder(model_dir, fill)
    return record


def replace_folder(folder: Path, fill: Callable[[Path], None]) -> Path:
    """Write a new `folder` through `fill(temp)` and swap it in whole: no file of an earlier codec survives,
    and a crash leaves the old folder."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        fill(temp)
        for path in (temp, *temp.iterdir()):  # mkdtemp makes the folder private; the model is a shared artifact
            path.chmod(0o755 if path.is_dir() else 0o644)
        if folder.exists():
            shutil.rmtree(folder)
        temp.rename(folder)
    finally:
        if temp.exists():
            shutil.rmtree(temp)
    return folder


def model_record(spec: CodecSpec, codec, params: VaeParams) -> dict:  # noqa: ANN001 (a LatentCodec)
    """What `<out>/model` holds for a codec the stage does not fit: which codec, as configured (no machine
    paths), its resolved config and the sha256 of its weights and scaling (KLCodec.digest)."""
    if spec.kind == "haar_wavelet":
        return {"kind": spec.kind, "resolution": spec.resolution, "wavelet_scale": spec.wavelet_scale,
                "encoder_id": codec.encoder_id}
    config = {k: v for k, v in codec.model.config.items() if k == "_class_name" or not k.startswith("_")}
    return {"kind": spec.kind, "pretrained": params.pretrained, "subfolder": spec.subfolder,
            "revision": spec.revision, "resolution": spec.resolution, "config": config, "codec_sha256": codec.digest}


def write_model_record(model_dir: Path, record: dict) -> Path:
    """Replace `model_dir` by a folder holding only `model.json` (stale fitted weights go)."""
    return replace_folder(model_dir, lambda folder: write_json(record, folder / MODEL_RECORD))


def codec_spec(lesions: pd.DataFrame, data_root: Path, out_dir: Path, params: VaeParams) -> tuple[CodecSpec, dict]:
    """The spec to write as codec.json (fitting the demo model first when needed) and fit details."""
    if params.kind == "haar_wavelet":
        return CodecSpec("haar_wavelet", params.resolution, wavelet_scale=params.wavelet_scale), {}
    if params.pretrained:
        source = params.pretrained
        for candidate in (data_root / source, Path(source)):
            if candidate.is_dir():
                source = str(candidate)
                break
        model_dir = output_paths(out_dir)["model"].resolve()
        if Path(source).resolve() == model_dir or model_dir in Path(source).resolve().parents:
            raise ValueError(f"vae.pretrained {params.pretrained!r} is this stage's own output folder {model_dir}, "
                             f"which every run replaces: copy the model elsewhere (e.g. <data_root>/pretrained_vae) "
                             f"and point vae.pretrained there")
        return CodecSpec("autoencoder_kl", params.resolution, source, params.subfolder, params.revision), {}
    fit = fit_small_autoencoder(lesions, data_root, output_paths(out_dir)["model"], params)
    return CodecSpec("autoencoder_kl", params.resolution, source="model"), fit


def held_out(lesions: pd.DataFrame, count: int) -> pd.DataFrame:
    """Up to `count` val images (test, then train, when the val split is empty), seeded sample."""
    for split in ("val", "test", "train"):
        rows = lesions[lesions["split"] == split].sort_values("isic_id")
        if len(rows):
            return rows.sample(n=min(count, len(rows)), random_state=0).sort_values("isic_id")
    raise ValueError("vae: the lesions table is empty")


def evaluate_codec(codec, images: np.ndarray) -> tuple[np.ndarray, dict]:
    """Reconstructions (uint8) of `images` through the posterior mean, and PSNR/SSIM/latent statistics."""
    batch = to_tensor(images)
    means = [codec.encode(batch[i:i + EVAL_BATCH])[0] for i in range(0, len(batch), EVAL_BATCH)]
    mean = torch.cat(means)
    reconstructed = torch.cat([codec.decode(m) for m in means])
    per_image = psnr(to_unit(batch), to_unit(reconstructed))
    return to_uint8(reconstructed), {
        "psnr_db": round(float(per_image.mean()), 3), "psnr_db_min": round(float(per_image.min()), 3),
        "ssim": round(float(ssim(to_unit(batch), to_unit(reconstructed)).mean()), 4),
        "psnr_per_image": [round(float(v), 2) for v in per_image],
        "scaled_latent_mean": round(float(mean.mean()), 4), "scaled_latent_std": round(float(mean.std()), 4),
    }


def run_vae(lesions_path: Path, data_root: Path, out_dir: Path, params: VaeParams) -> VaeOutputs:
    """Load or fit the codec, write codec.json, and report reconstruction quality on held-out images."""
    lesions_path, data_root, out_dir = Path(lesions_path), Path(data_root), Path(out_dir)
    lesions = pd.read_parquet(lesions_path)
    paths = output_paths(out_dir)
    spec, fit = codec_spec(lesions, data_root, out_dir, params)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec.write(paths["codec"])
    codec = open_codec(CodecSpec.read(paths["codec"]), params.device)  # the path every later stage takes
    if spec.source != "model":
        write_model_record(paths["model"], model_record(spec, codec, params))
    evaluation = held_out(lesions, params.eval_images)
    images = load_split_images(evaluation, data_root, params.resolution, params.decode_workers)
    reconstructed, quality = evaluate_codec(codec, images)
    reconstruction_grid(images[:GRID_IMAGES], reconstructed[:GRID_IMAGES], paths["grid"],
                        quality["psnr_per_image"][:GRID_IMAGES])
    side = params.resolution // codec.downsample
    summary = {
        "kind": spec.kind, "source": spec.source or "(weight-free)", "encoder_id": codec.encoder_id,
        "resolution": params.resolution, "latent_shape": [codec.latent_channels, side, side],
        "scaling_factor": codec.scaling_factor, "shift_factor": codec.shift_factor, "device": str(codec.device),
        "eval_split": str(evaluation["split"].iloc[0]), "eval_images": len(evaluation), **quality,
        "fit": {k: v for k, v in fit.items() if k != "fit_key"},
        "parameters": sum(p.numel() for p in codec.model.parameters()) if hasattr(codec, "model") else 0,
    }
    write_json(summary, paths["report"])
    log.info("vae %s: PSNR %.2f dB, SSIM %.3f on %d held-out images", codec.encoder_id, quality["psnr_db"],
             quality["ssim"], len(evaluation))
    return VaeOutputs(codec=paths["codec"], model=paths["model"],
                      report=paths["report"], grid=paths["grid"], summary=summary)
