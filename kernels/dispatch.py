"""Picks the backend for the MTM operator: the Triton kernel where it can run, else the reference.

The reference is always correct and differentiable; the Triton kernel (kernels/triton_mtm.py)
exists to be fast on GPU tensors. triton is an optional dependency, imported on first use.

STEERGAN_MTM_KERNEL chooses, for A/B checks:
- `auto` (default): the kernel for CUDA tensors when triton imports, else the reference;
- `reference`: the reference everywhere (STEERGAN_FORCE_REFERENCE=1 means the same);
- `triton`: the kernel for CUDA tensors, and for CPU tensors too when the kernels were
  imported under Triton's interpreter (TRITON_INTERPRET=1) -- how tests run it without a GPU.
A kernel that fails to compile or run falls back to the reference, with one warning.
"""
from __future__ import annotations

import functools
import os
import warnings

import torch

from . import modconv_ref

KERNEL_ENV = "STEERGAN_MTM_KERNEL"
FORCE_REFERENCE_ENV = "STEERGAN_FORCE_REFERENCE"
KERNEL_CHOICES = ("auto", "triton", "reference")
# The dtypes the kernel serves; float64 (tests, gradcheck) stays on the reference.
KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32)

# The kernels index with 32-bit integers; larger tensors stay on the reference.
_INT32_LIMIT = 2 ** 31
_OutOfMemoryError = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)  # torch < 2.5 lacks the alias

_warned_no_triton = False


@functools.cache
def _load_triton():
    """kernels.triton_mtm, or None where triton cannot be imported (not installed, no wheel for
    this platform). Cached: the import is attempted once per process."""
    try:
        from . import triton_mtm
    except Exception:  # noqa: BLE001  an ImportError, or a triton that fails while loading its backends
        return None
    return triton_mtm


def kernel_choice() -> str:
    """'auto', 'triton' or 'reference'. Read on every call, so that tests (and a user in a live
    session) can flip it."""
    if os.environ.get(FORCE_REFERENCE_ENV, "").strip() not in ("", "0"):
        return "reference"
    choice = os.environ.get(KERNEL_ENV, "").strip().lower() or "auto"
    if choice not in KERNEL_CHOICES:
        raise ValueError(f"{KERNEL_ENV}={os.environ[KERNEL_ENV]!r} is not one of {', '.join(KERNEL_CHOICES)}")
    return choice


def _triton_backend(device: torch.device, warn: bool):
    """The kernel module if tensors on `device` should use it, else None (meaning: the reference)."""
    global _warned_no_triton
    choice = kernel_choice()
    if choice == "reference":
        return None
    if device.type != "cuda":
        # Only the interpreter runs the kernels on the CPU, and it is far too slow to be a default.
        if choice != "triton":
            return None
        module = _load_triton()
        return module if module is not None and module.INTERPRETED and module.failure is None else None
    module = _load_triton()
    if module is None:
        if warn and not _warned_no_triton:
            _warned_no_triton = True  # once per process: this runs on every layer of every frame
            warnings.warn("steergan: triton is not installed, so CUDA tensors use the slower pure-PyTorch "
                          "reference for deform_modconv (pip install 'steergan-studio[triton]')",
                          RuntimeWarning, stacklevel=3)
        return None
    return module if module.failure is None else None


def _fits_the_kernel(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Not empty, and every index the kernels compute fits in 32 bits."""
    b, ci, h, w = x.shape if x.dim() == 4 else (0, 0, 0, 0)
    largest = max(x.numel(), b * h * w * max(weight.shape[0], 18), 9 * ci * weight.shape[0])
    return x.numel() > 0 and weight.shape[0] > 0 and largest < _INT32_LIMIT


def active_backend(device: torch.device | str | None = None) -> str:
    """'triton' or 'reference': what deform_modconv runs on tensors on `device`.

    `device` defaults to the current CUDA device where CUDA is available, else the CPU.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return "reference" if _triton_backend(torch.device(device), warn=False) is None else "triton"


def deform_modconv(x: torch.Tensor, weight: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor | None = None,
                   style: torch.Tensor | None = None, demodulate: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """The MTM operator; see kernels.modconv_ref.deform_modconv for the semantics."""
    module = _triton_backend(x.device, warn=True)
    if module is not None and x.dtype in KERNEL_DTYPES and _fits_the_kernel(x, weight):
        module.check_inputs(x, weight, offset, mask, style)  # a bad argument is the caller's error, not a failure
        try:
            return module.deform_modconv(x, weight, offset, mask, style, demodulate, eps)
        except _OutOfMemoryError:
            raise
        except Exception as err:  # noqa: BLE001 -- any compile or launch failure: the reference still works
            module.report_failure(err)
    return modconv_ref.deform_modconv(x, weight, offset, mask, style, demodulate, eps)
