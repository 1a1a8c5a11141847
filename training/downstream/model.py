"""The downstream classifier: a timm backbone by name with one output logit (P(malignant) after a sigmoid).

Pretrained weights come only from a local file, through timm's `pretrained_cfg_overlay=dict(file=...)`
(timm maps the file's names, adapts the input channels and drops an ImageNet head whose class count differs
from ours); there is never a hub download. Without a file the weights are random (seeded by the caller).
A trained classifier is saved as safetensors with its config in the metadata and beside it as JSON.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import timm
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

CONFIG_KEY = "downstream_classifier_config"


@dataclass(frozen=True)
class ClassifierConfig:
    backbone: str
    image_size: int
    mean: tuple[float, float, float]  # input normalisation of the backbone's pretrained config
    std: tuple[float, float, float]

    def to_dict(self) -> dict:
        return asdict(self)


def create_backbone(backbone: str, pretrained_file: str | Path | None = None) -> nn.Module:
    """timm model `backbone` with one logit; weights from `pretrained_file` when given, else random."""
    if not timm.is_model(backbone.split(".")[0]):  # "resnet50.a1_in1k": the architecture before the tag
        raise ValueError(f"backbone {backbone!r} is not a timm model name (see timm.list_models())")
    kwargs: dict = {"num_classes": 1}
    if pretrained_file is not None:
        path = Path(pretrained_file)
        if not path.is_file():
            raise FileNotFoundError(f"downstream classifier: pretrained weights file {path} does not exist "
                                    f"(params pretrained_file)")
        kwargs |= {"pretrained": True, "pretrained_cfg_overlay": {"file": str(path)}}
    return timm.create_model(backbone, **kwargs)


def classifier_config(model: nn.Module, backbone: str, image_size: int) -> ClassifierConfig:
    cfg = model.pretrained_cfg
    return ClassifierConfig(backbone=backbone, image_size=image_size, mean=tuple(cfg["mean"]), std=tuple(cfg["std"]))


def model_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu().clone() for k, v in model.state_dict().items()}


def save_classifier(weights: dict[str, torch.Tensor], config: ClassifierConfig, weights_path: Path,
                    config_path: Path | None = None) -> Path:
    weights_path = Path(weights_path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(weights_path), metadata={CONFIG_KEY: json.dumps(config.to_dict(), sort_keys=True)})
    if config_path is not None:
        Path(config_path).write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")
    return weights_path


def load_classifier(weights_path: Path) -> tuple[nn.Module, ClassifierConfig]:
    """A classifier saved by `save_classifier`, and its config (from the safetensors metadata)."""
    with safe_open(str(weights_path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if CONFIG_KEY not in metadata:
        raise ValueError(f"{weights_path}: no {CONFIG_KEY!r} in the safetensors metadata")
    values = json.loads(metadata[CONFIG_KEY])
    config = ClassifierConfig(backbone=values["backbone"], image_size=int(values["image_size"]),
                              mean=tuple(values["mean"]), std=tuple(values["std"]))
    model = create_backbone(config.backbone)
    model.load_state_dict(load_file(str(weights_path)))
    return model.eval(), config
