"""In which number format a training step runs (issue 24's faster CPU step).

"bf16": the forward passes under bfloat16 autocast (weights, optimiser moments, losses and
the EMA stay float32; autocast runs convolutions and matrix products in bf16, and the MTM
reference's grid sampling runs in float32 under it, checked). "fp32": everything float32. "auto": bf16
on a CUDA GPU (what the GPU run always did) and on a CPU with bfloat16 arithmetic in
hardware (AMX or AVX512-BF16, where oneDNN's bf16 convolutions are fast); fp32 on any other
CPU, where bf16 would be emulated and slower.

On the CPU, bf16 also puts G and D in channels-last memory (oneDNN's bf16 kernels want it):
rooms-cpu, batch 8, 2 threads, the relay paused, `python -m models.training.bench_step
--variants fp32,fp32-cl,bf16,bf16-cl`: fp32 15.9 img/s, bf16 20.9, bf16 + channels-last 23.7
(README, "A faster CPU step").
"""
from __future__ import annotations

import contextlib
from functools import lru_cache
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16")


@lru_cache(maxsize=1)
def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU does bfloat16 arithmetic in hardware (AMX tiles or AVX512-BF16).
    Read from the kernel's flags (Linux); False where they cannot be read."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[-1].split())
            return bool(flags & {"amx_bf16", "avx512_bf16"})
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """'fp32' or 'bf16' for this device; ValueError names an unknown precision."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {str(precision)[:20]!r}; known: {list(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16"
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context a training step's forward passes run in. Reusable: torch.autocast objects
    may be entered again after they exit."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_channels_last(*modules: torch.nn.Module) -> None:
    """Put modules' 4-d weights in channels-last memory, in place: oneDNN's bf16 convolutions
    want it on the CPU (1.13x on top of bf16), and the GPU run may choose it (its plan)."""
    for module in modules:
        # Module.to takes memory_format at run time; torch's stubs leave it out of every overload
        module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
