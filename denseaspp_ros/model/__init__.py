"""DenseASPP networks and their weights (no ROS imports)."""

from .checkpoint import (
    CLI_OPTIONS,
    Checkpoint,
    OptionNames,
    convert_checkpoint,
    identify_checkpoint,
    identify_variant,
    load_weights,
    read_checkpoint,
    save_checkpoint,
    save_safetensors,
    to_original_state_dict,
)
from .denseaspp import DenseASPP
from .variants import (
    AUTO_MODEL,
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
    "AUTO_MODEL",
    "CLI_OPTIONS",
    "OptionNames",
    "identify_checkpoint",
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
