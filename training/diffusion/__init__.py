"""DDPM noise schedule and its closed forms (METHOD.md §2)."""

from training.diffusion.schedule import DiffusionSchedule

__all__ = ["DiffusionSchedule"]
