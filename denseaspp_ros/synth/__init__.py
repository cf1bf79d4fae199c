"""Synthetic street world: procedural scenes, ray-cast frames with exact labels, datasets and bags (no ROS)."""

from .render import Frame, Renderer
from .scene import Scene, generate_scene

__all__ = ["Frame", "Renderer", "Scene", "generate_scene"]
