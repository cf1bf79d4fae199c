"""Training and fine-tuning with the original recipe (no ROS imports)."""

from ..datasets import BagDataset, CityscapesDataset, DatasetError
from .augmentation import Augmentation
from .config import TrainConfig, load_config
from .initialise import InitReport, initialise
from .trainer import Trainer, train

__all__ = [
    "Augmentation",
    "BagDataset",
    "CityscapesDataset",
    "DatasetError",
    "InitReport",
    "TrainConfig",
    "Trainer",
    "initialise",
    "load_config",
    "train",
]
