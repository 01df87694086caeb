"""A video's frames in time and its target file, without torch: the studio's timeline,
transport and export dialog use these before any model is loaded."""
from __future__ import annotations

from pathlib import Path

from models.document.fileio import ExportError

VIDEO_FORMATS = (".mp4", ".gif")
MAX_GIF_FPS = 50  # GIF delays are whole centiseconds, and viewers slow delays under 2 cs to 10 cs
MIN_GIF_FPS = 100 / 65535  # a GIF delay is 16 bits of centiseconds: one frame lasts 655.35 s at most
MAX_FRAMES = 1_000_000


def frame_count(seconds: float, fps: float) -> int:
    return max(1, int(round(seconds * fps)))


def frame_time(start: float, index: int, fps: float) -> float:
    """Time of frame `index`. i / fps is correctly rounded, so frames that coincide in two
    frame rates (12/60 and 5/25) get the very same float, hence the very same pixels."""
    return start + index / fps


def check_target(path: Path, fps: float) -> str:
    """The video type (".mp4" or ".gif") of a target path; ExportError naming what is wrong."""
    kind = path.suffix.lower()
    if kind not in VIDEO_FORMATS:
        raise ExportError(path, f"unknown video type {path.suffix!r}; use one of {list(VIDEO_FORMATS)}")
    if not path.parent.is_dir():
        raise ExportError(path, f"the folder {path.parent} does not exist")
    if not 0 < fps <= 240:
        raise ExportError(path, f"the frame rate must be within (0, 240] fps, got {fps:g}")
    if kind == ".gif" and fps > MAX_GIF_FPS:
        raise ExportError(path, f"a GIF plays at most {MAX_GIF_FPS} fps (its delays are whole centiseconds);"
                                f" got {fps:g}; use .mp4 or a lower rate")
    if kind == ".gif" and fps < MIN_GIF_FPS:
        raise ExportError(path, f"a GIF frame lasts at most 655.35 s (its delay is 16 bits of centiseconds), so"
                                f" at least {MIN_GIF_FPS:.4f} fps; got {fps:g}")
    return kind
