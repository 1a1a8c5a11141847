"""Downstream image classifiers (issue 6; METHOD.md §5): a timm backbone with one logit, trained on real and
synthetic images read through one dataset interface, with the second paper's B.2 augmentations."""

from training.downstream.dataset import ImageDataset, ImageItem
from training.downstream.images import ImageSource, decode_image, tar_members
from training.downstream.model import ClassifierConfig, create_backbone, load_classifier, save_classifier
from training.downstream.params import DownstreamParams
from training.downstream.train import TrainResult, train_classifier

__all__ = ["ClassifierConfig", "DownstreamParams", "ImageDataset", "ImageItem", "ImageSource", "TrainResult",
           "create_backbone", "decode_image", "load_classifier", "save_classifier", "tar_members", "train_classifier"]
