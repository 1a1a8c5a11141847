"""A diffusers AutoencoderKL behind the codec interface, loaded by hub id or local folder.

Real profile: `stabilityai/sd-vae-ft-ema` (the Class-N-Diff authors' code; METHOD.md §1), 256x256 ->
4x32x32, scaling_factor 0.18215 from its config. Demo profile: a small AutoencoderKL fitted by the `vae`
stage and saved as safetensors + config.json, loaded back through this same `from_pretrained` path.
"""

from __future__ import annotations

import hashlib
import logging
from contextlib import nullcontext
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from diffusers import AutoencoderKL

log = logging.getLogger(__name__)


def load_autoencoder(source: str, subfolder: str | None = None, revision: str | None = None) -> AutoencoderKL:
    """`from_pretrained` on a hub id or a local folder; safetensors only (no pickled weights), float32."""
    from diffusers import AutoencoderKL

    try:
        model = AutoencoderKL.from_pretrained(source, subfolder=subfolder, revision=revision,
                                              use_safetensors=True, torch_dtype=torch.float32)
    except (OSError, ValueError) as error:
        raise OSError(f"AutoencoderKL {source!r} (subfolder={subfolder!r}, revision={revision!r}) could not be "
                      f"loaded: expected a local folder with config.json + diffusion_pytorch_model.safetensors, "
                      f"or a hub id reachable online / in the HF cache ({error})") from error
    log.info("loaded AutoencoderKL from %s (%.1fM parameters, scaling_factor %s)", source,
             sum(p.numel() for p in model.parameters()) / 1e6, model.config.scaling_factor)
    return model.eval()


def weights_digest(model: torch.nn.Module, extra: str = "") -> str:
    """sha256 over the state dict (names, dtypes, shapes, bytes) and `extra`: equal weights, equal digest."""
    digest = hashlib.sha256(extra.encode())
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class KLCodec:
    """Encode to the scaled posterior (mean, std); on CUDA the network runs under bf16 autocast."""

    def __init__(self, model: AutoencoderKL, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        # channels_last: oneDNN / cuDNN convolutions run faster on NHWC (1.5x on this project's CPU, batch 64).
        self.model = model.to(self.device, memory_format=torch.channels_last).eval()
        config = model.config
        self.scaling_factor = float(config.scaling_factor)
        self.shift_factor = float(getattr(config, "shift_factor", None) or 0.0)  # SD3/Flux VAEs shift too
        self.latent_channels = int(config.latent_channels)
        self.downsample = 2 ** (len(config.block_out_channels) - 1)
        self.precision = "bf16" if self.device.type == "cuda" else "fp32"
        # sha256 of the weights, scaling and shift: what the codec computes, whatever the device
        self.digest = weights_digest(model, extra=f"scale={self.scaling_factor}|shift={self.shift_factor}")
        self.encoder_id = f"autoencoder_kl-{self.digest[:16]}-{self.precision}"

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    @torch.inference_mode()
    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with self._autocast():
            images = images.to(self.device, torch.float32).contiguous(memory_format=torch.channels_last)
            posterior = self.model.encode(images).latent_dist
        mean = (posterior.mean.float() - self.shift_factor) * self.scaling_factor
        std = posterior.std.float() * self.scaling_factor
        return mean.cpu().contiguous(), std.cpu().contiguous()

    @torch.inference_mode()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        latents = latents.to(self.device, torch.float32) / self.scaling_factor + self.shift_factor
        latents = latents.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            images = self.model.decode(latents).sample
        return images.float().clamp(-1, 1).cpu().contiguous()
