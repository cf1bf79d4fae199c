"""DenseASPP networks and their weights (no ROS imports)."""

from .checkpoint import (
    Checkpoint,
    read_checkpoint,
    read_training_state,
    save_checkpoint,
    save_safetensors,
    to_original_state_dict,
)
from .denseaspp import DenseASPP
from .variants import (
    AUTO_MODEL,
    CLI_OPTIONS,
    MODEL_NAMES,
    VARIANTS,
    OptionNames,
    build_model,
    convert_checkpoint,
    get_variant,
    identify_checkpoint,
    identify_variant,
    load_weights,
)
from .weights import (
    DEMO_WEIGHTS,
    RELEASE_NORMALIZATION,
    WEIGHTS,
    Normalization,
    Weights,
    find_published_weights,
    normalization_of,
    resolve_weights,
)

__all__ = [
    "AUTO_MODEL",
    "CLI_OPTIONS",
    "DEMO_WEIGHTS",
    "MODEL_NAMES",
    "VARIANTS",
    "WEIGHTS",
    "Checkpoint",
    "DenseASPP",
    "OptionNames",
    "Weights",
    "Normalization",
    "RELEASE_NORMALIZATION",
    "normalization_of",
    "build_model",
    "convert_checkpoint",
    "find_published_weights",
    "get_variant",
    "identify_checkpoint",
    "identify_variant",
    "load_weights",
    "read_checkpoint",
    "read_training_state",
    "resolve_weights",
    "save_checkpoint",
    "save_safetensors",
    "to_original_state_dict",
]
