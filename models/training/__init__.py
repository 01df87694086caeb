"""Training: configs, losses, the loop, and resumable state on disk."""
from .configs import TRAINING_CONFIGS, TrainConfig, training_config
from .trainer import Trainer

__all__ = ["TRAINING_CONFIGS", "TrainConfig", "Trainer", "training_config"]
