"""The generators that ship in checkpoints/. Torch-free: the studio lists them in its File
menu before any model has loaded (app.main_window imports no torch)."""
from __future__ import annotations

from pathlib import Path

CHECKPOINT_DIR = Path(__file__).resolve().parents[2] / "checkpoints"
# Files in checkpoints/ that are not generators: the metrics' segmentation probe.
NOT_GENERATORS = frozenset({"probe"})


def bundled_generators(folder: Path | None = None) -> list[Path]:
    """The generator checkpoints in `folder` (default: checkpoints/), sorted by name."""
    folder = CHECKPOINT_DIR if folder is None else folder
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.safetensors") if p.stem not in NOT_GENERATORS and p.is_file())
