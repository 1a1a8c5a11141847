"""The latent classifier of Class-N-Diff (paper §III-A; METHOD.md §3).

C×H×W latent -> Conv2d(C→3) (local features, and the 3 channels an ImageNet backbone expects) -> a timm
backbone by name (paper: ResNet-101) with global pooling -> feed-forward head -> one logit (malignant).
Trained with BCE-with-logits, the numerically stable form of the paper's "sigmoid + cross-entropy".

Normalisation: GroupNorm (Wu & He 2018; 32 groups, fewer where a layer's channels do not divide by 32) in place
of the backbone's BatchNorm. On a 4x32x32 latent, ResNet-101's last stage runs on a 1x1 map, so BatchNorm's
statistics come from the per-process micro-batch alone: at 1 (the paper's global batch 8 on 8 GPUs, or
grad_accum 8) training fails ("Expected more than 1 value per channel"), at 2 the statistics are noise, and the
result would depend on how the global batch is cut across processes. GroupNorm normalises each sample on its
own: any per-process batch works, a sample's output does not depend on the others in its batch (so N processes,
grad_accum N and one process compute the same gradient), training and evaluation behave alike (no running
statistics, which x̂0 at large t would corrupt). Frozen (eval-mode) BatchNorm was the alternative; it needs
statistics that describe the backbone's input, and nothing provides them here: the backbone trains from
scratch by default, and a pretrained backbone's ImageNet statistics describe photographs, not the randomly
initialised stem's output on latents.

Pretrained backbone weights come only from a local file (no hub download), in timm's (= torchvision's ResNet)
names: its convolutions and its BatchNorm scales and shifts are loaded (the latter as the GroupNorm affine
parameters); its running statistics are dropped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

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
    # "group": GroupNorm (see the module docstring); "batch": timm's BatchNorm, only to read classifiers saved
    # before GroupNorm (their config has no `norm`)
    norm: Literal["group", "batch"] = "group"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping) -> LatentClassifierConfig:
        return cls(**({"norm": "batch"} | dict(values)))


GROUPS = 32  # GroupNorm groups (Wu & He 2018's default)


def group_norm(num_channels: int, **kwargs) -> nn.GroupNorm:  # noqa: ANN003  (timm passes device, dtype)
    """GroupNorm with 32 groups, or the largest divisor of 32 that divides the channels (resnet10t's 24: 8)."""
    return nn.GroupNorm(math.gcd(GROUPS, num_channels), num_channels, **kwargs)


def _backbone(config: LatentClassifierConfig) -> nn.Module:
    """The timm backbone (pooled features, no head), with GroupNorm unless `norm` is "batch"."""
    kwargs: dict = {"num_classes": 0, "in_chans": 3}  # num_classes 0: pooled features, no timm head
    if config.norm == "batch":
        return timm.create_model(config.backbone, **kwargs)
    try:
        backbone = timm.create_model(config.backbone, norm_layer=group_norm, **kwargs)
    except TypeError as error:
        raise ValueError(f"latent classifier: backbone {config.backbone!r} takes no timm `norm_layer` ({error}); "
                         f"use a timm ResNet (resnet101, resnet10t, ...)") from None
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in backbone.modules()):
        raise ValueError(f"latent classifier: backbone {config.backbone!r} keeps BatchNorm layers under timm's "
                         f"`norm_layer`; use a timm ResNet (resnet101, resnet10t, ...)")
    return backbone


def _load_backbone_weights(backbone: nn.Module, path: Path, norm: str) -> None:
    """Load a local backbone checkpoint; the GroupNorm backbone drops BatchNorm running statistics and a head."""
    state = timm.models.load_state_dict(str(path))
    head = getattr(backbone, "pretrained_cfg", {}).get("classifier") or "fc"
    state = {k: v for k, v in state.items() if not k.startswith(f"{head}.")}  # num_classes 0: no head here
    if norm == "group":
        state = {k: v for k, v in state.items()
                 if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}
    try:
        backbone.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(f"latent classifier: pretrained backbone file {path} does not fit "
                         f"{type(backbone).__name__}: {error}") from None


class LatentClassifier(nn.Module):
    def __init__(self, config: LatentClassifierConfig) -> None:
        super().__init__()
        self.config = config
        self.stem = nn.Conv2d(config.in_channels, 3, kernel_size=3, padding=1)
        self.backbone = _backbone(config)
        if config.pretrained_file:
            path = Path(config.pretrained_file)
            if not path.is_file():
                raise FileNotFoundError(f"latent classifier: pretrained backbone file {path} does not exist "
                                        f"(params classifier_pretrained_file)")
            _load_backbone_weights(self.backbone, path, config.norm)
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
