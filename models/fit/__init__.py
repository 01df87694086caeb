"""Fitting a generator to a picture the user brings (issue 26): layout.py finds where the
objects are, optimize.py fits the scene's latents (and, optionally, the weights) to it."""
from __future__ import annotations

from pathlib import Path


def why_not_fittable(name: str, ref, config, trained: bool) -> str | None:
    """Why a generator cannot be fitted to a picture, or None: the studio and `steergan fit`
    ask alike. `ref`: its CheckpointRef; `config`: its GeneratorConfig."""
    if ref.path is None or ref.sha256 is None:
        return f"{name} is an untrained architecture, not a checkpoint"
    if config.time is not None:
        return f"{name} makes video; fitting a picture needs a still-image generator (rooms or figures)"
    if not trained:
        return f"{name} ({Path(ref.path).name}) has no training record, so it makes noise"
    return None
