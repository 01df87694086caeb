"""The projected discriminator's frozen backbone on disk (checkpoints/d_backbone.safetensors):
safetensors + JSON, read through the checked readers, never a pickle."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from models.document.fileio import FileError, FileProblem, atomic_write_bytes, open_regular
from models.io.bundled import CHECKPOINT_DIR
from models.io.safetensors_io import SafetensorsProblem, read_header, read_tensor, tagged_metadata
from models.nets.projected import FeatureBackbone

BACKBONE_FORMAT = "steergan-d-backbone"
BACKBONE_VERSION = 1
META_KEY = "steergan_d_backbone"
DEFAULT_BACKBONE = CHECKPOINT_DIR / "d_backbone.safetensors"
# A segmenter of the figures' parts (head, torso, arm, leg), same architecture: the judge of
# TrainConfig.limb_parts (training.parts). Never a metric's network either.
DEFAULT_PARTS_BACKBONE = CHECKPOINT_DIR / "parts_backbone.safetensors"


class BackboneError(FileError):
    """The discriminator backbone file is missing, damaged or not one."""


def save_backbone(path: str | os.PathLike, backbone: FeatureBackbone, info: dict[str, Any]) -> None:
    from safetensors.torch import save

    meta = {"format": BACKBONE_FORMAT, "version": BACKBONE_VERSION, "classes": backbone.classes, **info}
    tensors = {k: v.detach().cpu().contiguous() for k, v in backbone.state_dict().items()}
    atomic_write_bytes(path, save(tensors, metadata={META_KEY: json.dumps(meta)}))


def load_backbone(path: str | os.PathLike = DEFAULT_BACKBONE) -> tuple[FeatureBackbone, dict[str, Any]]:
    """-> (the backbone, frozen and in eval mode; its JSON). BackboneError names the file."""
    parts = Path(path).name == DEFAULT_PARTS_BACKBONE.name
    hint = f"; train it with `python -m models.training.train_backbone{' --parts' if parts else ''}`"
    try:
        f = open_regular(path)
    except FileProblem as exc:
        raise BackboneError(path, ("the discriminator backbone is missing" + hint) if exc.problem == "no such file"
                            else exc.problem) from None
    try:
        with f:
            header = read_header(f)
            meta = tagged_metadata(header, META_KEY, BACKBONE_FORMAT, BACKBONE_VERSION, "discriminator backbone")
            classes = meta.get("classes")
            if not (isinstance(classes, list) and 2 <= len(classes) <= 64 and all(isinstance(c, str) for c in classes)):
                raise BackboneError(path, "has no valid class list")
            backbone = FeatureBackbone(classes)
            expected = backbone.state_dict()
            if set(header.tensors) != set(expected):
                missing = sorted(set(expected) - set(header.tensors))[:3]
                raise BackboneError(path, f"does not match the backbone architecture (missing {missing})")
            for name, tensor in expected.items():
                entry = header.tensors[name]
                if entry.shape != tuple(tensor.shape) or entry.dtype != tensor.dtype:
                    raise BackboneError(path, f"tensor {name!r} is {entry.dtype} {entry.shape}, the backbone needs"
                                              f" {tensor.dtype} {tuple(tensor.shape)}")
            tensors = {name: read_tensor(f, header, name) for name in expected}
    except SafetensorsProblem as exc:
        raise BackboneError(path, str(exc)) from None
    except OSError as exc:
        raise BackboneError(path, f"cannot be read: {exc.strerror or exc}") from None
    for name, value in tensors.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise BackboneError(path, f"tensor {name!r} holds NaN or infinite values")
    backbone.load_state_dict(tensors)
    return backbone.eval().requires_grad_(False), meta


def backbone_path() -> Path:
    """Where the trainer looks (STEERGAN_D_BACKBONE overrides, for tests and experiments)."""
    return Path(os.environ.get("STEERGAN_D_BACKBONE", str(DEFAULT_BACKBONE)))


def parts_backbone_path() -> Path:
    """The part segmenter's file (STEERGAN_PARTS_BACKBONE overrides, as backbone_path)."""
    return Path(os.environ.get("STEERGAN_PARTS_BACKBONE", str(DEFAULT_PARTS_BACKBONE)))
