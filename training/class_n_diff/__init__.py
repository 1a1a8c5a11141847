"""Class-N-Diff joint training (METHOD.md §3): params, Table I presets and the γ gate, the joint step, checkpoints."""

from training.class_n_diff.params import PRESETS, TrainParams
from training.class_n_diff.presets import JointConfig, preset, resolve_joint_config
from training.class_n_diff.step import StepNoise, StepResult, joint_step

__all__ = ["PRESETS", "JointConfig", "StepNoise", "StepResult", "TrainParams", "joint_step", "preset",
           "resolve_joint_config"]
