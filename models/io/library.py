"""Finding and opening generators: a checkpoint file, the bundled default, or an untrained
model of a built-in architecture (so everything works before any training has happened)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from models.config import DEFAULT_ARCHITECTURE, architecture
from models.document.session import CheckpointRef
from models.io.bundled import CHECKPOINT_DIR
from models.io.checkpoint import CheckpointError, CheckpointInfo, load_checkpoint, read_info
from models.nets.generator import Generator

# The default the studio and `steergan render` open, in order of preference: the GPU-trained
# rooms model, then the CPU-trained one.
DEFAULT_CHECKPOINTS = (CHECKPOINT_DIR / "rooms.safetensors", CHECKPOINT_DIR / "rooms-cpu.safetensors")
# What "at least as good" means for the default (stored by `steergan eval --store`; lower is
# better for both). The first GPU run shipped a rooms model after 5 minutes that the realism
# classifier scored as rooms-cpu but whose FD was 39x worse: opening it by default would
# have shown a new user a worse picture than the model it replaced.
DEFAULT_GATE = ("realism_accuracy", "domain_fd")


def _stored_metrics(path: Path) -> dict | None:
    try:
        metrics = read_info(path).meta.get("metrics")
    except CheckpointError:
        return None
    return metrics if isinstance(metrics, dict) else None


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
    metrics = [_stored_metrics(p) for p in present]
    for i, path in enumerate(present):
        if all(_no_worse(metrics[i], later) for later in metrics[i + 1:]):
            return path
    return None


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
