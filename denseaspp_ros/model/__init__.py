"""DenseASPP networks and their weights (no ROS imports)."""

from .checkpoint import (
    Checkpoint,
    convert_checkpoint,
    identify_variant,
    load_weights,
    read_checkpoint,
    save_checkpoint,
    save_safetensors,
    to_original_state_dict,
)
from .denseaspp import DenseASPP
from .variants import (
    DEMO_WEIGHTS_MODEL,
    DEMO_WEIGHTS_NAME,
    MODEL_NAMES,
    PUBLISHED_WEIGHTS,
    VARIANTS,
    build_model,
    find_published_weights,
    get_variant,
    resolve_weights,
)

__all__ = [
    "DEMO_WEIGHTS_MODEL",
    "DEMO_WEIGHTS_NAME",
    "MODEL_NAMES",
    "PUBLISHED_WEIGHTS",
    "VARIANTS",
    "Checkpoint",
    "DenseASPP",
    "build_model",
    "find_published_weights",
    "convert_checkpoint",
    "get_variant",
    "identify_variant",
    "load_weights",
    "read_checkpoint",
    "resolve_weights",
    "save_checkpoint",
    "save_safetensors",
    "to_original_state_dict",
]
