"""The generators that ship in checkpoints/. Torch-free: the studio lists them in its File
menu before any model has loaded (app.main_window imports no torch)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from models.document.fileio import FileProblem, JSONProblem, loads_checked, open_regular

CHECKPOINT_DIR = Path(__file__).resolve().parents[2] / "checkpoints"
# Files in checkpoints/ that are not generators: the metrics' segmentation probe.
NOT_GENERATORS = frozenset({"probe", "d_backbone", "parts_backbone"})  # the metrics probe; the D backbones
META_KEY = "steergan"  # the checkpoint's description in the safetensors header's __metadata__
MAX_HEADER_BYTES = 16 << 20  # the loader's own bound is checked when a file is opened

# The default the studio and `steergan render` open, in order of preference: the GPU-trained
# rooms model, then the CPU-trained one.
DEFAULT_CHECKPOINTS = (CHECKPOINT_DIR / "rooms.safetensors", CHECKPOINT_DIR / "rooms-cpu.safetensors")
# What "at least as good" means for the default (stored by `steergan eval --store`; lower is
# better for both). The first GPU run shipped a rooms model after 5 minutes that the realism
# classifier scored as rooms-cpu but whose FD was 39x worse: opening it by default would
# have shown a new user a worse picture than the model it replaced.
DEFAULT_GATE = ("realism_accuracy", "domain_fd")


def bundled_generators(folder: Path | None = None) -> list[Path]:
    """The generator checkpoints in `folder` (default: checkpoints/), sorted by name (figures before
    figures-cpu)."""
    folder = CHECKPOINT_DIR if folder is None else folder
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.glob("*.safetensors") if p.stem not in NOT_GENERATORS and p.is_file()),
                  key=lambda p: p.stem)


_META_CACHE: dict[tuple[str, int, int], dict[str, Any] | None] = {}


def stored_meta(path: Path) -> dict[str, Any] | None:
    """A checkpoint's description from its header, read without torch and without the weights
    (JSON only, through the checked parser); None for a file that is not a readable checkpoint
    (a FIFO, deep JSON, a damaged header, weights cut off): the loader says why when the file is opened. Read
    once per file version (path, size, mtime), not on every menu fill."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _META_CACHE:
        _META_CACHE[key] = _read_meta(path)
    return _META_CACHE[key]


def _read_meta(path: Path) -> dict[str, Any] | None:
    try:
        with open_regular(path) as f:
            size = int.from_bytes(f.read(8), "little")
            if not 2 <= size <= MAX_HEADER_BYTES:
                return None
            header = loads_checked(f.read(size), "its header")
            data_bytes = os.fstat(f.fileno()).st_size - 8 - size
        meta = loads_checked(header["__metadata__"][META_KEY], "its description")
    except (FileProblem, JSONProblem, OSError, KeyError, TypeError):
        return None
    if not _weights_in_file(header, data_bytes):
        return None  # cut off (an interrupted copy): its stored metrics describe weights it lacks
    return meta if isinstance(meta, dict) else None


def _weights_in_file(header: dict[str, Any], data_bytes: int) -> bool:
    """Whether every tensor the header lists lies inside the file's `data_bytes` of data: a
    file whose end was cut off keeps a readable header (the loader checks the rest)."""
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2
                and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
                and 0 <= offsets[0] <= offsets[1] <= data_bytes):
            return False
    return True


def _count(value: Any, limit: float) -> bool:
    """A number a menu can print: finite, not negative, below `limit` (a 400-digit number
    overflows float formatting)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < limit


def describe(meta: dict[str, Any] | None) -> str:
    """One line on how a generator was trained, for menus: '64 px, 27,504 images in 58 min
    on the CPU'. Empty when the header says nothing usable."""
    if not meta:
        return ""
    config, trained = meta.get("config"), meta.get("trained_on")
    size = config.get("resolution") if isinstance(config, dict) else None
    trained = trained if isinstance(trained, dict) else {}
    parts = [f"{size} px"] if isinstance(size, int) and 0 < size <= 4096 else []
    images, minutes, device = trained.get("images"), trained.get("minutes"), trained.get("device")
    if isinstance(images, int) and _count(images, 1e15):
        line = f"{images:,} images"
        if _count(minutes, 1e9):
            line += f" in {minutes:.0f} min"
        if isinstance(device, str):
            line += " on the CPU" if device == "cpu" else f" on {device[:60]}"
        parts.append(line)
    elif not trained:
        parts.append("untrained")
    return ", ".join(parts)


def _no_worse(a: dict | None, b: dict | None) -> bool:
    """Whether metrics `a` are at least as good as `b` on every gate metric `b` has."""
    if b is None:
        return True
    for key in DEFAULT_GATE:
        mine, theirs = (m.get(key) if m else None for m in (a, b))
        if isinstance(theirs, (int, float)) and not (isinstance(mine, (int, float)) and mine <= theirs):
            return False
    return True


def default_checkpoint() -> Path | None:
    """The first of DEFAULT_CHECKPOINTS that exists and whose stored metrics are no worse than
    those of every later one that exists (the last one that exists needs no proof)."""
    present = [p for p in DEFAULT_CHECKPOINTS if p.is_file()]
    metrics = []
    for p in present:
        m = (stored_meta(p) or {}).get("metrics")
        metrics.append(m if isinstance(m, dict) else None)
    for i, path in enumerate(present):
        if all(_no_worse(metrics[i], later) for later in metrics[i + 1:]):
            return path
    return None
