"""Generators, the scene document, checkpoints, training and metrics. Plain PyTorch: no Qt here."""
from .checkpoint import CheckpointError, CheckpointInfo, load_checkpoint, read_info, save_checkpoint
from .config import ARCHITECTURES, DEFAULT_ARCHITECTURE, ConfigError, GeneratorConfig, architecture
from .generator import Generator, Latents
from .render import Frame, render
from .scene import Hierarchy, ObjectState, SceneError, SceneState, initial_state
from .session import CheckpointRef, SessionError, load_session, save_session

__all__ = [
    "ARCHITECTURES", "DEFAULT_ARCHITECTURE", "CheckpointError", "CheckpointInfo", "CheckpointRef", "ConfigError",
    "Frame", "Generator", "GeneratorConfig", "Hierarchy", "Latents", "ObjectState", "SceneError", "SceneState",
    "SessionError", "architecture", "initial_state", "load_checkpoint", "load_session", "read_info", "render",
    "save_checkpoint", "save_session",
]
