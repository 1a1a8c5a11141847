"""Feature networks for FID and precision/recall: any nn.Module mapping images to (B, D) features.

Images reach the network as float (B, 3, H, W) in [-1, 1] (the project's image convention). Two sources:
- `ClassifierFeatures`: the project's own classifier features (codec encoder -> posterior mean -> the
  latent classifier's stem and backbone, pooled): works offline, but its FIDs are comparable only with
  FIDs of the same network;
- `inception_v3_from_file`: an Inception-v3 state dict (torchvision or timm key names; .safetensors, or a
  .pt/.pth read with weights_only=True), e.g. the ISIC-fine-tuned network of Class-N-Diff §IV-A. Its
  classifier head (fc, AuxLogits) is dropped: features are the 2048-d pooled activations, the FID layer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

INCEPTION_SIDE = 299  # Inception-v3's input size (Szegedy et al. 2016)
DROPPED_PREFIXES = ("fc.", "AuxLogits.")


class InceptionFeatures(nn.Module):
    """Resize to 299 px (bilinear, antialiased) -> Inception-v3 -> 2048-d pooled features."""

    num_features = 2048  # read by torchmetrics' FrechetInceptionDistance(feature=...)

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # timm's inception_v3 expects mean 0.5 / std 0.5 normalisation, i.e. exactly [-1, 1] input
        x = F.interpolate(images, size=(INCEPTION_SIDE, INCEPTION_SIDE), mode="bilinear", align_corners=False,
                          antialias=True)
        return self.backbone(x)


class ClassifierFeatures(nn.Module):
    """Images -> `encode` (a codec's, returning (scaled mean, std)) -> the latent classifier's pooled features.

    `classifier` is a training.latent_classifier.LatentClassifier (anything with `stem` and a timm `backbone`).
    """

    def __init__(self, encode: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
                 classifier: nn.Module) -> None:
        super().__init__()
        self.encode, self.classifier = encode, classifier
        self.num_features = int(classifier.backbone.num_features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        mean, _ = self.encode(images)
        device = next(self.classifier.parameters()).device
        return self.classifier.backbone(self.classifier.stem(mean.to(device)))


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict (tensor per parameter name), got {type(state).__name__}")
    return {k.removeprefix("module."): v for k, v in state.items()}


def inception_v3_from_file(path: Path | str) -> InceptionFeatures:
    import timm

    path = Path(path)
    backbone = timm.create_model("inception_v3", pretrained=False, num_classes=0)
    state = {k: v for k, v in _read_state_dict(path).items() if not k.startswith(DROPPED_PREFIXES)}
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: not an Inception-v3 state dict; missing {missing[:5]}, unexpected {unexpected[:5]}")
    return InceptionFeatures(backbone).eval()


def file_digest(path: Path | str) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]
