"""Node and topic names: what launch files, Nav2 configurations and the other node address, spelt once."""

from __future__ import annotations

SEGMENTATION_NODE = "segmentation_node"
COSTMAP_NODE = "semantic_costmap_node"

DIAGNOSTICS_TOPIC = "/diagnostics"
LABELS_TOPIC = "~/labels"
LABEL_INFO_TOPIC = "~/label_info"
COSTMAP_TOPIC = "~/costmap"
COSTMAP_COLOR_TOPIC = "~/costmap_color"
COSTMAP_OBSTACLES_TOPIC = "~/costmap_obstacles"


def camera_output_topic(camera: str, kind: str) -> str:
    """``~/<camera>/<kind>``: one of a camera's outputs (mask, mask_color, overlay, confidence, health)."""
    return f"~/{camera}/{kind}"


def of_node(node: str, private_topic: str) -> str:
    """A node's private (``~/...``) topic as the absolute name it has outside any namespace."""
    return f"/{node}{private_topic.removeprefix('~')}"


def segmentation_mask_topic(camera: str) -> str:
    """segmentation_node's mask topic of ``camera``, relative: it resolves in the namespace both nodes share."""
    return f"{SEGMENTATION_NODE}/{camera}/mask"
