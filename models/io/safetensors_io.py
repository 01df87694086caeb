"""Reading safetensors files we did not write, without trusting them.

A safetensors file is an 8-byte little-endian header length, a JSON header (a table of
tensors: dtype, shape, byte range; and "__metadata__", a string-to-string map), then the
raw bytes. Everything in the header is checked before anything is allocated: types,
lengths, nesting, that each byte range matches its dtype and shape and lies inside the
file, that ranges do not overlap. Tensors are then read one at a time from the same open
file (never re-opened by path, so the file checked is the file read).

Problems come out as SafetensorsProblem (a sentence without the path); callers wrap it in
their own error type, which adds the path.
"""
from __future__ import annotations

import math
import os
import struct
import sys
from dataclasses import dataclass
from typing import Any, BinaryIO

import torch

from models.document.fileio import JSONProblem, loads_checked

MAX_HEADER = 16 << 20  # bytes of JSON header: ours are a few KiB
MAX_TENSORS = 10_000
MAX_NAME = 255  # characters in a tensor name
MAX_DIMS = 8
DTYPES = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64,
          "U8": torch.uint8, "I8": torch.int8, "I16": torch.int16, "I32": torch.int32, "I64": torch.int64,
          "BOOL": torch.bool}


class SafetensorsProblem(Exception):
    """What is wrong with a safetensors file, as a sentence that follows its path."""


@dataclass
class TensorEntry:
    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    start: int  # byte offsets within the data section
    end: int


@dataclass
class SafetensorsHeader:
    metadata: dict[str, str]
    tensors: dict[str, TensorEntry]
    data_start: int  # file offset of the data section


def parse_json(text: str | bytes, what: str) -> Any:
    """fileio.loads_checked, whose failures become SafetensorsProblem here."""
    try:
        return loads_checked(text, what)
    except JSONProblem as exc:
        raise SafetensorsProblem(str(exc)) from None


def _short(value: Exception | str, limit: int = 120) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_header(f: BinaryIO) -> SafetensorsHeader:
    """Read and validate the header of the open file `f` (at any position)."""
    size = os.fstat(f.fileno()).st_size
    f.seek(0)
    head = f.read(8)
    if len(head) < 8:
        raise SafetensorsProblem(f"is truncated or not a safetensors file ({size} bytes)")
    (n,) = struct.unpack("<Q", head)
    if n > MAX_HEADER:
        raise SafetensorsProblem("is truncated or not a safetensors file (its first 8 bytes are not a header"
                                 " length)")
    if n > size - 8:
        raise SafetensorsProblem(f"is truncated: its header needs {n} bytes, the file has {size - 8} after the"
                                 " length")
    raw = f.read(n)
    if len(raw) != n:
        raise SafetensorsProblem("is truncated (it changed while being read)")
    if raw[:1] != b"{":
        raise SafetensorsProblem("is not a safetensors file (its header is not a JSON object)")
    table = parse_json(raw, "its header")
    if not isinstance(table, dict):
        raise SafetensorsProblem("is not a safetensors file (its header is not a JSON object)")
    metadata = table.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in metadata.items()):
        raise SafetensorsProblem("has a malformed header: __metadata__ must map strings to strings")
    if len(table) > MAX_TENSORS:
        raise SafetensorsProblem(f"lists {len(table)} tensors; at most {MAX_TENSORS} are accepted")
    data_len = size - 8 - n
    tensors = {name: _entry(name, value, data_len) for name, value in table.items()}
    previous = None
    for entry in sorted(tensors.values(), key=lambda e: (e.start, e.end)):
        if previous is not None and entry.start < previous.end:
            raise SafetensorsProblem(f"has overlapping tensors {previous.name!r} and {entry.name!r}")
        if entry.end > entry.start:
            previous = entry
    return SafetensorsHeader(metadata, tensors, 8 + n)


def _entry(name: str, value: Any, data_len: int) -> TensorEntry:
    label = repr(name if len(name) <= 60 else name[:60] + "…")
    if not 1 <= len(name) <= MAX_NAME:
        raise SafetensorsProblem(f"has a tensor name of {len(name)} characters (1 to {MAX_NAME} allowed): {label}")
    if not isinstance(value, dict) or set(value) != {"dtype", "shape", "data_offsets"}:
        raise SafetensorsProblem(f"has a malformed entry for tensor {label} (needs exactly dtype, shape and"
                                 " data_offsets)")
    dtype = DTYPES.get(value["dtype"]) if isinstance(value["dtype"], str) else None
    if dtype is None:
        raise SafetensorsProblem(f"tensor {label} has an unknown dtype {_short(repr(value['dtype']), 40)}")
    shape, offsets = value["shape"], value["data_offsets"]
    if (not isinstance(shape, list) or len(shape) > MAX_DIMS
            or not all(_is_int(d) and 0 <= d <= data_len for d in shape)):
        raise SafetensorsProblem(f"tensor {label} has an invalid shape {_short(repr(shape), 80)}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)
            and 0 <= offsets[0] <= offsets[1]):
        raise SafetensorsProblem(f"tensor {label} has invalid data_offsets {_short(repr(offsets), 80)}")
    start, end = offsets
    if end > data_len:
        raise SafetensorsProblem(f"is truncated: tensor {label} ends at byte {end} of {data_len} data bytes")
    nbytes = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    if nbytes != end - start:
        raise SafetensorsProblem(f"tensor {label} has shape {tuple(shape)} of {value['dtype']}, {nbytes} bytes,"
                                 f" but its data is {end - start} bytes")
    return TensorEntry(name, dtype, tuple(shape), start, end)


def tagged_metadata(header: SafetensorsHeader, key: str, fmt: str, newest: int, kind: str) -> dict[str, Any]:
    """The JSON description a SteerGAN file keeps under metadata `key`, checked to be a
    `fmt` file of a version this SteerGAN reads (1..newest); SafetensorsProblem saying
    which of these it is not (`kind`: "fit file", "discriminator backbone")."""
    raw = header.metadata.get(key)
    if raw is None:
        raise SafetensorsProblem(f"is not a SteerGAN {kind} (no {kind} metadata)")
    meta = parse_json(raw, f"its {kind} metadata")
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise SafetensorsProblem(f"is not a SteerGAN {kind} (its metadata describes something else)")
    version = meta.get("version")
    if not (isinstance(version, int) and not isinstance(version, bool) and 1 <= version <= newest):
        raise SafetensorsProblem(f"is {kind} format v{str(version)[:20]}; this SteerGAN reads up to v{newest}")
    return meta


def read_tensor(f: BinaryIO, header: SafetensorsHeader, name: str) -> torch.Tensor:
    """One tensor of a validated header, read from `f`."""
    entry = header.tensors[name]
    if entry.end == entry.start:
        return torch.empty(entry.shape, dtype=entry.dtype)
    f.seek(header.data_start + entry.start)
    data = bytearray(f.read(entry.end - entry.start))
    if len(data) != entry.end - entry.start:
        raise SafetensorsProblem("is truncated (it changed while being read)")
    tensor = torch.frombuffer(data, dtype=entry.dtype).reshape(entry.shape)
    if sys.byteorder == "big" and tensor.element_size() > 1:  # safetensors is little-endian
        tensor = torch.from_numpy(tensor.numpy().byteswap())
    return tensor
