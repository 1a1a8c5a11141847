"""The embedded demo dataset: synthetic dermoscopy images written in the real ISIC on-disk layouts."""

from pipelines.demo_data.generate import DemoSummary, Quirk, generate_demo_data
from pipelines.demo_data.params import DemoDataParams

__all__ = ["DemoDataParams", "DemoSummary", "Quirk", "generate_demo_data"]
