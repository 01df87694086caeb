"""Finding and opening generators: a checkpoint file, the bundled default, or an untrained
model of a built-in architecture (so everything works before any training has happened)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from models.config import DEFAULT_ARCHITECTURE, architecture
from models.document.session import CheckpointRef
from models.io.bundled import default_checkpoint
from models.io.checkpoint import CheckpointInfo, load_checkpoint
from models.nets.generator import Generator


@dataclass
class LoadedGenerator:
    generator: Generator
    ref: CheckpointRef
    name: str
    trained: bool
    info: CheckpointInfo | None = None


def untrained_generator(arch: str = DEFAULT_ARCHITECTURE, seed: int = 0) -> Generator:
    """A randomly initialised generator, the same on every machine for the same seed."""
    cpu_rng = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        g = Generator(architecture(arch))
    finally:
        torch.random.set_rng_state(cpu_rng)
    g.update_w_avg()
    return g.eval().requires_grad_(False)


def open_generator(path: str | Path | None = None, device: torch.device | str = "cpu",
                   arch: str | None = None) -> LoadedGenerator:
    """Open `path`; with no path, the bundled default checkpoint, else an untrained `arch`.

    Raises CheckpointError for a bad file (the caller keeps whatever it had open).
    """
    if path is None and arch is None:
        path = default_checkpoint()
    if path is not None:
        generator, info = load_checkpoint(path, device)
        ref = CheckpointRef(path=str(Path(path).resolve()), sha256=info.sha256,
                            architecture=info.meta.get("architecture"))
        return LoadedGenerator(generator, ref, info.name, info.trained, info)
    arch = arch or DEFAULT_ARCHITECTURE
    generator = untrained_generator(arch).to(device)
    return LoadedGenerator(generator, CheckpointRef(None, None, arch), f"{arch} (untrained)", trained=False)
