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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import torch

from models.config import ConfigError, GeneratorConfig, short_repr
from models.document.fileio import (
    FileError,
    FileProblem,
    atomic_write_bytes,
    check_format_version,
    open_regular,
    stream_sha256,
)
from models.io.bundled import META_KEY
from models.io.safetensors_io import SafetensorsHeader, SafetensorsProblem, parse_json, read_tensor
from models.io.safetensors_io import read_header as read_safetensors_header
from models.io.weight_shapes import generator_shapes
from models.nets.generator import Generator

FORMAT = "steergan-checkpoint"
FORMAT_VERSION = 1
# The description's fields that the app shows or reads, and the type each must have.
META_TYPES = {"name": str, "architecture": str, "created": str, "trained_on": dict, "metrics": dict,
              "capabilities": dict}


class CheckpointError(FileError):
    """A checkpoint cannot be used (read, checked or written)."""


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
    _write(path, data)


def _looks_like_pickle(head: bytes) -> bool:
    """Zip (torch.save's format) or a pickle stream of protocol 2 to 5."""
    return head[:4] == b"PK\x03\x04" or (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"))


def _open(path: str | os.PathLike) -> BinaryIO:
    try:
        return open_regular(path)
    except FileProblem as exc:
        raise CheckpointError(path, exc.problem) from None


def _header(path: str | os.PathLike, f: BinaryIO) -> tuple[dict[str, Any], SafetensorsHeader]:
    """Validate the container and our JSON: (the JSON, the tensor table)."""
    try:
        head = f.read(9)
        # A safetensors file starts with its header length (u64) then "{". Only a file that
        # is not that is checked for pickle magic: the length's bytes may be anything.
        if head[8:9] != b"{" and _looks_like_pickle(head):
            raise CheckpointError(path, "is a pickle (PyTorch .pt/.pth or similar); refused: pickles run code"
                                        " when loaded, so SteerGAN never unpickles. Use a .safetensors checkpoint")
        header = read_safetensors_header(f)
    except SafetensorsProblem as exc:
        raise CheckpointError(path, str(exc)) from None
    except OSError as exc:
        raise CheckpointError(path, f"cannot be read: {exc.strerror or exc}") from None
    meta_raw = header.metadata.get(META_KEY)
    if meta_raw is None:
        raise CheckpointError(path, "is a safetensors file but not a SteerGAN checkpoint (no 'steergan' metadata)")
    try:
        meta = parse_json(meta_raw, "its SteerGAN metadata")
    except SafetensorsProblem as exc:
        raise CheckpointError(path, f"has corrupt SteerGAN metadata: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(path, "has metadata that is not a SteerGAN checkpoint description")
    check_format_version(CheckpointError, path, meta.get("format_version"), FORMAT_VERSION, "checkpoint format",
                         hint=". Update SteerGAN to open it")
    for key, kind in META_TYPES.items():
        if key in meta and meta[key] is not None and not isinstance(meta[key], kind):
            raise CheckpointError(path, f"has a malformed description: {key!r} must be"
                                        f" {'a string' if kind is str else 'an object'}, got {short_repr(meta[key])}")
    return meta, header


def _config(path: str | os.PathLike, meta: dict[str, Any]) -> GeneratorConfig:
    try:
        return GeneratorConfig.from_dict(meta.get("config"))
    except ConfigError as exc:
        raise CheckpointError(path, f"has an invalid generator config: {exc}") from None


def _check_weights_fit(path: str | os.PathLike, header: SafetensorsHeader, config: GeneratorConfig) -> None:
    """The header's tensors are exactly the weights `config` needs, by name and shape:
    checked from the config alone (weight_shapes), before any network is built."""
    expected = generator_shapes(config)
    missing = sorted(set(expected) - set(header.tensors))
    unexpected = sorted(set(header.tensors) - set(expected))
    if missing or unexpected:
        more = "..." if len(missing) > 5 else ""
        raise CheckpointError(path, "does not match its config:"
                              + (f" missing tensors {missing[:5]}{more}" if missing else "")
                              + (f" unexpected tensors {[short_repr(u, 40) for u in unexpected[:5]]}"
                                 if unexpected else ""))
    for name, entry in header.tensors.items():
        if entry.shape != expected[name]:
            raise CheckpointError(path, f"tensor {name!r} has shape {entry.shape}, the config needs {expected[name]}")
        if not entry.dtype.is_floating_point:
            raise CheckpointError(path, f"tensor {name!r} is {entry.dtype}, not floating point")


def _validated(path: str | os.PathLike, f: BinaryIO) -> tuple[dict, SafetensorsHeader, GeneratorConfig]:
    """The description, the header and the config of an open checkpoint, all checked
    against each other: what read_info and load_checkpoint both need first."""
    meta, header = _header(path, f)
    config = _config(path, meta)
    _check_weights_fit(path, header, config)
    return meta, header, config


def read_info(path: str | os.PathLike) -> CheckpointInfo:
    """The description only (fast, no weights): for the app's panels and the CLI. Everything
    is validated, the weights' names and shapes too, so a file read_info accepts loads."""
    with _open(path) as f:
        meta, header, config = _validated(path, f)
        try:
            sha = stream_sha256(f)
        except OSError as exc:
            raise CheckpointError(path, f"cannot be read: {exc.strerror or exc}") from None
    return CheckpointInfo(path=str(path), sha256=sha, config=config, meta=meta)


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[Generator, CheckpointInfo]:
    """Validate everything, then build the generator. Raises CheckpointError only.

    Nothing is allocated before the config is checked (bounded sizes) and the header's
    tensors are checked against it (names, shapes, byte counts within the file)."""
    with _open(path) as f:
        meta, header, config = _validated(path, f)
        try:
            sha = stream_sha256(f)
            tensors = {name: read_tensor(f, header, name) for name in header.tensors}
        except SafetensorsProblem as exc:
            raise CheckpointError(path, str(exc)) from None
        except OSError as exc:
            raise CheckpointError(path, f"cannot be read: {exc.strerror or exc}") from None
    for name, t in tensors.items():
        if not torch.isfinite(t).all():
            raise CheckpointError(path, f"tensor {name!r} holds non-finite or non-float values")
    info = CheckpointInfo(path=str(path), sha256=sha, config=config, meta=meta)
    generator = Generator(config)
    generator.load_state_dict({k: v.float() for k, v in tensors.items()})
    generator.eval().requires_grad_(False)
    return generator.to(device), info


def store_metrics(path: str | os.PathLike, metrics: dict[str, Any], expect_sha256: str | None = None) -> None:
    """Rewrite a checkpoint with `metrics` in its JSON (weights byte-identical, atomic).
    `expect_sha256`: the file's hash when it was measured; if it has changed since (a new
    model shipped under its name meanwhile), nothing is written."""
    from safetensors.torch import save

    with _open(path) as f:
        meta, header = _header(path, f)
        _check_weights_fit(path, header, _config(path, meta))
        try:
            tensors = {name: read_tensor(f, header, name) for name in header.tensors}
            sha = stream_sha256(f) if expect_sha256 is not None else None
        except (SafetensorsProblem, OSError) as exc:
            raise CheckpointError(path, f"cannot be read: {exc}") from None
    if sha != expect_sha256:
        raise CheckpointError(path, "changed while it was being measured (another model is there now);"
                                    " the metrics were not stored")
    meta["metrics"] = metrics
    _write(path, save(tensors, metadata={META_KEY: json.dumps(meta, sort_keys=True)}))


def _write(path: str | os.PathLike, data: bytes) -> None:
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise CheckpointError(path, f"cannot be written ({exc.strerror or exc}); a file that was there is"
                                    " unchanged") from None
