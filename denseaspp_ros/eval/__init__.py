"""Evaluation: confusion matrices and the Cityscapes metrics (no ROS imports)."""

from .metrics import ConfusionMatrix

__all__ = ["ConfusionMatrix"]
