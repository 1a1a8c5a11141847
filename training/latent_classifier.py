"""The latent classifier of Class-N-Diff (paper §III-A; METHOD.md §3).

C×H×W latent -> Conv2d(C→3) (local features, and the 3 channels an ImageNet backbone expects) -> a timm
backbone by name (paper: ResNet-101) with global pooling -> feed-forward head -> one logit (malignant).
Trained with BCE-with-logits, the numerically stable form of the paper's "sigmoid + cross-entropy".
Pretrained backbone weights come only from a local file (no hub download): timm's
`pretrained_cfg_overlay=dict(file=...)`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn


@dataclass(frozen=True)
class LatentClassifierConfig:
    in_channels: int = 4
    backbone: str = "resnet101"
    head_hidden: int = 512
    head_dropout: float = 0.0
    pretrained_file: str | None = None  # local .safetensors/.pth of the backbone (timm names, 3 input channels)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping) -> LatentClassifierConfig:
        return cls(**dict(values))


class LatentClassifier(nn.Module):
    def __init__(self, config: LatentClassifierConfig) -> None:
        super().__init__()
        self.config = config
        self.stem = nn.Conv2d(config.in_channels, 3, kernel_size=3, padding=1)
        kwargs: dict = {"num_classes": 0, "in_chans": 3}  # num_classes 0: pooled features, no timm head
        if config.pretrained_file:
            path = Path(config.pretrained_file)
            if not path.is_file():
                raise FileNotFoundError(f"latent classifier: pretrained backbone file {path} does not exist "
                                        f"(params classifier_pretrained_file)")
            kwargs |= {"pretrained": True, "pretrained_cfg_overlay": {"file": str(path)}}
        self.backbone = timm.create_model(config.backbone, **kwargs)
        features = self.backbone.num_features
        self.head = nn.Sequential(nn.Linear(features, config.head_hidden), nn.ReLU(),
                                  nn.Dropout(config.head_dropout), nn.Linear(config.head_hidden, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) latents -> (B,) logits of P(malignant)."""
        return self.head(self.backbone(self.stem(z))).squeeze(1)


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean BCE-with-logits against 0/1 labels, in float32."""
    return F.binary_cross_entropy_with_logits(logits.float(), labels.float())


def save_latent_classifier(model: LatentClassifier, weights_path: Path, config_path: Path | None = None) -> None:
    config_json = json.dumps(model.config.to_dict(), sort_keys=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    Path(weights_path).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(weights_path), metadata={"latent_classifier_config": config_json})
    if config_path is not None:
        Path(config_path).write_text(json.dumps(model.config.to_dict(), indent=2, sort_keys=True) + "\n")


def load_latent_classifier(weights_path: Path, config_path: Path | None = None) -> LatentClassifier:
    """The classifier saved by `save_latent_classifier` (its backbone is built without pretrained weights)."""
    from safetensors import safe_open

    if config_path is not None:
        config = json.loads(Path(config_path).read_text())
    else:
        with safe_open(str(weights_path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        if "latent_classifier_config" not in metadata:
            raise ValueError(f"{weights_path}: no 'latent_classifier_config' in the safetensors metadata")
        config = json.loads(metadata["latent_classifier_config"])
    model = LatentClassifier(LatentClassifierConfig.from_dict(config | {"pretrained_file": None}))
    model.load_state_dict(load_file(str(weights_path)))
    return model
