"""Load what earlier stages trained, for the stages after them: the codec, the EMA DiT, the joint classifier.

Models are read from their safetensors + JSON config (never pickles). A model's version is the md5 of its
weights file — the hash DVC records for it — so synthetic samples name exactly the model that made them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from pipelines.file_hashes import file_md5
from training.vae import CodecSpec, open_codec


def open_codec_of(vae_dir: Path, device: str = "auto"):
    """The codec the `vae` stage described in `<vae_dir>/codec.json`."""
    return open_codec(CodecSpec.read(Path(vae_dir) / "codec.json"), device)


@dataclass(frozen=True)
class TrainedRun:
    """The files of a Class-N-Diff / DiT-baseline run folder, as training.train.finish names them."""

    run_dir: Path

    def _file(self, name: str) -> Path:
        path = self.run_dir / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: train the model first (stage of {self.run_dir.name})")
        return path

    def dit_ema(self) -> tuple[torch.nn.Module, str]:
        """The EMA DiT in eval mode and its version (md5 of its weights)."""
        from training.dit import load_dit

        weights = self._file("dit_ema.safetensors")
        return load_dit(weights, self._file("dit_config.json")).eval(), file_md5(weights)

    def joint_classifier(self) -> torch.nn.Module:
        """The latent classifier trained jointly with the DiT (absent from a DiT-only run)."""
        from training.latent_classifier import load_latent_classifier

        return load_latent_classifier(self._file("classifier.safetensors"),
                                      self._file("classifier_config.json")).eval()
