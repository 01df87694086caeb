"""Checkpoints: safetensors weights with a JSON description in the file's header.

One file per generator, so a user drags one thing onto the window. The JSON (key
"steergan" of the safetensors metadata) holds the format version, the architecture
config, capabilities, what it was trained on and its metrics. Nothing here ever unpickles:
a pickle can run code on load, and we did not write it.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .config import ConfigError, GeneratorConfig
from .fileio import atomic_write_bytes, file_sha256
from .generator import Generator

FORMAT = "steergan-checkpoint"
FORMAT_VERSION = 1
META_KEY = "steergan"
MAX_HEADER = 16 << 20  # a safetensors header larger than this is not one of ours


class CheckpointError(Exception):
    """A checkpoint cannot be used. The message names the file and what is wrong."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass
class CheckpointInfo:
    path: str
    sha256: str
    config: GeneratorConfig
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.meta.get("name") or Path(self.path).stem

    @property
    def trained(self) -> bool:
        return bool(self.meta.get("trained_on"))


def save_checkpoint(path: str | os.PathLike, generator: Generator, meta: dict[str, Any] | None = None,
                    dtype: torch.dtype = torch.float16) -> None:
    """Write weights (fp16 by default: the shipped files must stay under 16 MiB) atomically."""
    from safetensors.torch import save

    header = dict(meta or {})
    header.update({
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": generator.config.to_dict(),
        "capabilities": generator.config.capabilities(),
    })
    header.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    tensors = {k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype).contiguous()
               for k, v in generator.state_dict().items()}
    data = save(tensors, metadata={META_KEY: json.dumps(header, sort_keys=True)})
    atomic_write_bytes(path, data)


def _looks_like_pickle(head: bytes) -> bool:
    """Zip (torch.save's format) or a pickle stream of protocol 2 to 5."""
    return head[:4] == b"PK\x03\x04" or (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"))


def read_header(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any], int]:
    """Validate the container and return (our JSON, the tensor table, data start offset)."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(p, "no such file")
    if p.is_dir():
        raise CheckpointError(p, "is a folder, not a checkpoint file")
    size = p.stat().st_size
    try:
        with open(p, "rb") as f:
            head = f.read(9)
            # A safetensors file starts with its header length (u64) then "{". Only a file
            # that is not that is checked for pickle magic: the length's bytes may be anything.
            n = struct.unpack("<Q", head[:8])[0] if len(head) >= 8 else None
            if (n is None or head[8:9] != b"{") and _looks_like_pickle(head):
                raise CheckpointError(p, "is a pickle (PyTorch .pt/.pth or similar); refused: pickles run code"
                                         " when loaded, so SteerGAN never unpickles. Use a .safetensors checkpoint")
            if n is None:
                raise CheckpointError(p, f"is truncated or not a safetensors file ({size} bytes)")
            if n > MAX_HEADER or n > size - 8:
                raise CheckpointError(p, f"is truncated or not a safetensors file (header claims {n} bytes,"
                                         f" the file has {size})")
            f.seek(8)
            raw = f.read(n)
    except OSError as exc:
        raise CheckpointError(p, f"cannot be read: {exc.strerror or exc}") from None
    try:
        table = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(p, "is not a safetensors file (its header is not JSON)") from None
    if not isinstance(table, dict):
        raise CheckpointError(p, "is not a safetensors file (its header is not a JSON object)")
    meta_raw = (table.pop("__metadata__", None) or {}).get(META_KEY)
    if meta_raw is None:
        raise CheckpointError(p, "is a safetensors file but not a SteerGAN checkpoint (no 'steergan' metadata)")
    try:
        meta = json.loads(meta_raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(p, f"has corrupt SteerGAN metadata: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(p, "has metadata that is not a SteerGAN checkpoint description")
    version = meta.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(p, f"has an invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(p, f"was written in checkpoint format version {version}; this SteerGAN reads"
                                 f" up to version {FORMAT_VERSION}. Update SteerGAN to open it")
    data_len = size - 8 - n
    for name, entry in table.items():
        try:
            start, end = entry["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise CheckpointError(p, f"has a malformed entry for tensor {name!r}") from None
        if end > data_len:
            raise CheckpointError(p, f"is truncated: tensor {name!r} ends at byte {end} of {data_len} data bytes")
    return meta, table, 8 + n


def read_info(path: str | os.PathLike) -> CheckpointInfo:
    """The description only (fast, no weights): for the app's panels and the CLI."""
    meta, _, _ = read_header(path)
    try:
        config = GeneratorConfig.from_dict(meta.get("config"))
    except ConfigError as exc:
        raise CheckpointError(path, f"has an invalid generator config: {exc}") from None
    return CheckpointInfo(path=str(path), sha256=file_sha256(path), config=config, meta=meta)


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[Generator, CheckpointInfo]:
    """Validate everything, then build the generator. Raises CheckpointError only."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    info = read_info(path)
    _, table, _ = read_header(path)
    generator = Generator(info.config)
    expected = generator.state_dict()
    missing = sorted(set(expected) - set(table))
    unexpected = sorted(set(table) - set(expected))
    if missing or unexpected:
        raise CheckpointError(path, "does not match its config:"
                              + (f" missing tensors {missing[:5]}{'...' if len(missing) > 5 else ''}" if missing else "")
                              + (f" unexpected tensors {unexpected[:5]}" if unexpected else ""))
    for name, entry in table.items():
        if tuple(entry.get("shape", ())) != tuple(expected[name].shape):
            raise CheckpointError(path, f"tensor {name!r} has shape {tuple(entry.get('shape', ()))}, the config"
                                        f" needs {tuple(expected[name].shape)}")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(path, f"cannot be decoded: {exc}") from None
    for name, t in tensors.items():
        if not t.is_floating_point() or not torch.isfinite(t).all():
            raise CheckpointError(path, f"tensor {name!r} holds non-finite or non-float values")
    generator.load_state_dict({k: v.float() for k, v in tensors.items()})
    generator.eval().requires_grad_(False)
    return generator.to(device), info


def store_metrics(path: str | os.PathLike, metrics: dict[str, Any]) -> None:
    """Rewrite a checkpoint with `metrics` in its JSON (weights byte-identical, atomic)."""
    from safetensors.torch import load_file, save

    meta, _, _ = read_header(path)
    meta["metrics"] = metrics
    tensors = load_file(str(path))
    atomic_write_bytes(path, save(tensors, metadata={META_KEY: json.dumps(meta, sort_keys=True)}))
