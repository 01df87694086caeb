"""Picks the backend for the MTM operator: the CUDA extension where it can run, else the reference.

The reference is always correct and differentiable; the CUDA kernel only exists to be fast
on GPU tensors. Setting STEERGAN_FORCE_REFERENCE=1 forces the reference everywhere (to
compare backends, or to rule the extension out when debugging).
"""
from __future__ import annotations

import functools
import os
import warnings

import torch

from . import modconv_ref

FORCE_REFERENCE_ENV = "STEERGAN_FORCE_REFERENCE"

_warned_no_extension = False


@functools.lru_cache(maxsize=None)
def _load_cuda_extension():
    """The compiled CUDA extension, or None where it cannot be built or loaded.

    No kernel exists yet: the CUDA issue fills this in (kernels/cuda/, built with
    torch.utils.cpp_extension.load). The contract: the returned module has a
    `deform_modconv(x, weight, offset, mask, style, demodulate, eps)` with exactly the
    reference's semantics. Cached, so a failed build is attempted once per process.
    """
    return None


def _forced_reference() -> bool:
    # Read on every call, so that tests (and a user in a live session) can flip it.
    return os.environ.get(FORCE_REFERENCE_ENV, "").strip() not in ("", "0")


def _cuda_backend(device: torch.device, warn: bool):
    """The extension module if `device` should use it, else None (meaning: the reference)."""
    global _warned_no_extension
    if device.type != "cuda" or _forced_reference():
        return None
    ext = _load_cuda_extension()
    if ext is None and warn and not _warned_no_extension:
        _warned_no_extension = True  # once per process: this runs on every layer of every frame
        warnings.warn("steergan: no CUDA kernel for deform_modconv is available; CUDA tensors use "
                      "the slower pure-PyTorch reference", RuntimeWarning, stacklevel=3)
    return ext


def active_backend(device: torch.device | str | None = None) -> str:
    """'cuda' or 'reference': what deform_modconv runs on tensors on `device`.

    `device` defaults to the current CUDA device where CUDA is available, else the CPU.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return "reference" if _cuda_backend(torch.device(device), warn=False) is None else "cuda"


def deform_modconv(x: torch.Tensor, weight: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor | None = None,
                   style: torch.Tensor | None = None, demodulate: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """The MTM operator; see kernels.modconv_ref.deform_modconv for the semantics."""
    ext = _cuda_backend(x.device, warn=True)
    if ext is not None:
        return ext.deform_modconv(x, weight, offset, mask, style, demodulate, eps)
    return modconv_ref.deform_modconv(x, weight, offset, mask, style, demodulate, eps)
