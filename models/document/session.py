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

from models.config import short_repr
from models.document.fileio import FileError, FileProblem, atomic_write_bytes, check_format_version, read_regular
from models.document.scene import SceneError, SceneState

SESSION_FORMAT = "steergan-session"
SESSION_VERSION = 1
MAX_SESSION_BYTES = 4 << 20  # a scene is a few KiB; anything this large is not a session


class SessionError(FileError):
    """A session file cannot be used."""


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
    """The scene and checkpoint reference of a session's text; SessionError, and only that,
    for anything wrong with it."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SessionError(path, f"is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise SessionError(path, "is not a session: its JSON is nested too deeply") from None
    except ValueError as exc:  # an integer of thousands of digits (Python 3.11+)
        raise SessionError(path, f"is not a session: {str(exc)[:100]}") from None
    if not isinstance(doc, dict) or doc.get("format") != SESSION_FORMAT:
        raise SessionError(path, "is not a SteerGAN session (no \"format\": \"steergan-session\")")
    check_format_version(SessionError, path, doc.get("version"), SESSION_VERSION, "session")
    ref = doc.get("checkpoint")
    if not isinstance(ref, dict):
        raise SessionError(path, "has no \"checkpoint\" object")
    for key in ("path", "sha256", "architecture"):
        if ref.get(key) is not None and not isinstance(ref.get(key), str):
            raise SessionError(path, f"checkpoint.{key} must be a string or null, got {short_repr(ref.get(key))}")
    if ref.get("path") is not None and not 0 < len(ref["path"]) <= 4096:
        raise SessionError(path, f"checkpoint.path must be 1 to 4096 characters, got {len(ref['path'])}")
    if ref.get("path") is not None and "\x00" in ref["path"]:
        raise SessionError(path, "checkpoint.path contains a NUL character (no file can have that name)")
    sha = ref.get("sha256")
    if sha is not None and (len(sha) != 64 or any(ch not in "0123456789abcdef" for ch in sha)):
        raise SessionError(path, f"checkpoint.sha256 must be 64 hex digits, got {short_repr(sha)}")
    try:
        state = SceneState.from_dict(doc.get("state"))
    except SceneError as exc:
        raise SessionError(path, f"has an invalid scene: {str(exc)[:300]}") from None
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError, RecursionError) as exc:
        # SceneState.from_dict checks what it reads; this is the net below it, so that a
        # hostile file still gives a SessionError and never a traceback.
        raise SessionError(path, f"has an invalid scene ({type(exc).__name__}: {str(exc)[:200]})") from None
    return state, CheckpointRef(ref.get("path"), sha, ref.get("architecture"))


def load_session(path: str | os.PathLike) -> tuple[SceneState, CheckpointRef]:
    """Read a session file (a regular file of at most MAX_SESSION_BYTES: a FIFO or a device
    is refused without blocking). Raises SessionError only."""
    p = Path(path)
    try:
        data = read_regular(p, MAX_SESSION_BYTES)
    except FileProblem as exc:
        raise SessionError(p, exc.problem) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SessionError(p, "is not a text file (not UTF-8)") from None
    return parse_session(text, p)


def resolve_checkpoint_path(ref: CheckpointRef, session_path: str | os.PathLike) -> str | None:
    """A relative checkpoint path is relative to the session file's folder."""
    if ref.path is None:
        return None
    p = Path(ref.path)
    return str(p if p.is_absolute() else (Path(session_path).parent / p))


