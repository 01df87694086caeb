"""Session files: a SceneState plus the checkpoint it was made with, as versioned JSON.

The checkpoint is named by path and content hash, so a session opened on another machine
(or after the file was retrained) can say exactly what differs instead of silently
rendering something else.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .fileio import atomic_write_bytes
from .scene import SceneError, SceneState

SESSION_FORMAT = "steergan-session"
SESSION_VERSION = 1
MAX_SESSION_BYTES = 4 << 20  # a scene is a few KiB; anything this large is not a session


class SessionError(Exception):
    """A session file cannot be used. The message names the file and what is wrong."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass(frozen=True)
class CheckpointRef:
    path: str | None  # None: the untrained default architecture
    sha256: str | None
    architecture: str | None = None  # for untrained models: which built-in architecture


def session_to_json(state: SceneState, checkpoint: CheckpointRef) -> str:
    doc = {
        "format": SESSION_FORMAT,
        "version": SESSION_VERSION,
        "checkpoint": {"path": checkpoint.path, "sha256": checkpoint.sha256, "architecture": checkpoint.architecture},
        "state": state.to_dict(),
    }
    return json.dumps(doc, indent=2, sort_keys=True)


def save_session(path: str | os.PathLike, state: SceneState, checkpoint: CheckpointRef) -> None:
    atomic_write_bytes(path, session_to_json(state, checkpoint).encode("utf-8"))


def parse_session(text: str, path: str | os.PathLike = "<session>") -> tuple[SceneState, CheckpointRef]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SessionError(path, f"is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(doc, dict) or doc.get("format") != SESSION_FORMAT:
        raise SessionError(path, "is not a SteerGAN session (no \"format\": \"steergan-session\")")
    version = doc.get("version")
    if not isinstance(version, int) or version < 1:
        raise SessionError(path, f"has an invalid version {version!r}")
    if version > SESSION_VERSION:
        raise SessionError(path, f"was written in session version {version}; this SteerGAN reads up to"
                                 f" version {SESSION_VERSION}")
    ref = doc.get("checkpoint")
    if not isinstance(ref, dict):
        raise SessionError(path, "has no \"checkpoint\" object")
    for key in ("path", "sha256", "architecture"):
        if ref.get(key) is not None and not isinstance(ref.get(key), str):
            raise SessionError(path, f"checkpoint.{key} must be a string or null, got {ref.get(key)!r}")
    try:
        state = SceneState.from_dict(doc.get("state"))
    except SceneError as exc:
        raise SessionError(path, f"has an invalid scene: {exc}") from None
    return state, CheckpointRef(ref.get("path"), ref.get("sha256"), ref.get("architecture"))


def load_session(path: str | os.PathLike) -> tuple[SceneState, CheckpointRef]:
    p = Path(path)
    try:
        if p.stat().st_size > MAX_SESSION_BYTES:
            raise SessionError(p, f"is {p.stat().st_size} bytes; a session is a few KiB, so this is not one")
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SessionError(p, "no such file") from None
    except UnicodeDecodeError:
        raise SessionError(p, "is not a text file (not UTF-8)") from None
    except OSError as exc:
        raise SessionError(p, f"cannot be read: {exc.strerror or exc}") from None
    return parse_session(text, p)


def resolve_checkpoint_path(ref: CheckpointRef, session_path: str | os.PathLike) -> str | None:
    """A relative checkpoint path is relative to the session file's folder."""
    if ref.path is None:
        return None
    p = Path(ref.path)
    return str(p if p.is_absolute() else (Path(session_path).parent / p))


