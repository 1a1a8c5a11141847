"""The embedded demo dataset: synthetic dermoscopy images written in the real ISIC on-disk layouts."""

from pipelines.demo_data.generate import DemoSummary, generate_demo_data
from pipelines.demo_data.params import DemoDataParams
from pipelines.demo_data.quirks import Quirk

__all__ = ["DemoDataParams", "DemoSummary", "Quirk", "generate_demo_data"]
