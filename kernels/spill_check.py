"""Compiles each Triton tile configuration for an H100 (sm_90) on the CPU and reports spills.

No GPU is needed: triton.compile targets sm_90 and ptxas (shipped with triton) assembles the
kernel; cuobjdump (shipped too) reads its register use and stack from the cubin. A kernel
with stack (local memory) has spilled registers, which costs far more than it saves.

    python -m kernels.spill_check [--kernel fwd] [--dtype bfloat16] [--candidates]

prints one JSON line per configuration and exits with 1 if any spilled. It must run in a
process where TRITON_INTERPRET is unset (interpreted kernels cannot be compiled); tests run
it in a subprocess for that reason.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from . import triton_mtm as T

# The variant of each kernel with the most live values: spatial style (two loads per corner)
# and a mask. Other variants only drop loads.
_ARGS = {
    "fwd": (T._mtm_fwd_kernel,
            ["x_ptr", "s_ptr", "off_ptr", "m_ptr", "w_ptr", "d_ptr", "out_ptr"],
            ["B", "H", "W", "CI", "CO", "CI_PER_SPLIT"],
            dict(STYLE=T.STYLE_SPATIAL, HAS_MASK=True, DEMOD=T.DEMOD_PIXEL, ATOMIC=False)),
    "bwd_data": (T._mtm_bwd_data_kernel,
                 ["x_ptr", "s_ptr", "off_ptr", "m_ptr", "w_ptr", "gy_ptr", "gxs_ptr", "goff_ptr", "gm_ptr"],
                 ["B", "H", "W", "CI", "CO"],
                 dict(STYLE=T.STYLE_SPATIAL, HAS_MASK=True)),
    "bwd_weight": (T._mtm_bwd_weight_kernel,
                   ["x_ptr", "s_ptr", "off_ptr", "m_ptr", "gy_ptr", "gw_ptr"],
                   ["B", "H", "W", "CI", "CO", "PIX_PER_SPLIT"],
                   dict(STYLE=T.STYLE_SPATIAL, HAS_MASK=True)),
}
_FP32_BUFFERS = {"gxs_ptr", "goff_ptr", "gm_ptr", "gw_ptr"}  # accumulated in fp32 whatever the input
_PTR_TYPE = {torch.float32: "*fp32", torch.float16: "*fp16", torch.bfloat16: "*bf16"}


def _cuobjdump() -> str:
    return os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")


def compile_config(kernel: str, dtype: torch.dtype, arch: int = 90, cfg: T.TileConfig | None = None) -> dict:
    """Compile one tile configuration (default: the kernel's default one) for sm_{arch}:
    registers, stack bytes, seconds."""
    if T.INTERPRETED:
        raise RuntimeError("kernels.triton_mtm was imported with TRITON_INTERPRET=1: nothing to compile")
    fn, pointers, ints, variant = _ARGS[kernel]
    cfg = cfg or T.CONFIGS[kernel]
    acc, _, dot, precision = T._types(dtype)
    constexprs = dict(variant, BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k,
                      ACC=acc, DOT=dot, PRECISION="tf32" if dtype == torch.float32 else precision)
    signature = {name: "*fp32" if name in _FP32_BUFFERS else _PTR_TYPE[dtype] for name in pointers}
    signature.update({name: "i32" for name in ints})
    signature.update(Y_MAX="fp32", X_MAX="fp32")
    signature.update({name: "constexpr" for name in constexprs})
    start = time.perf_counter()
    compiled = triton.compile(ASTSource(fn, signature, constexprs=constexprs),
                              target=GPUTarget("cuda", arch, 32),
                              options=dict(num_warps=cfg.num_warps, num_stages=cfg.num_stages))
    seconds = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "kernel.cubin")
        with open(path, "wb") as f:
            f.write(compiled.asm["cubin"])
        usage = subprocess.run([_cuobjdump(), "--dump-resource-usage", path], capture_output=True, text=True,
                               check=True).stdout
    found = dict(re.findall(r"\b(REG|STACK|LOCAL|SHARED):(\d+)", usage))
    if "REG" not in found:
        raise RuntimeError(f"cuobjdump printed no register count for {kernel}:\n{usage}")
    return dict(kernel=kernel, dtype=str(dtype).removeprefix("torch."), arch=f"sm_{arch}", config=cfg.__dict__,
                registers=int(found["REG"]), stack_bytes=int(found.get("STACK", 0)),
                local_bytes=int(found.get("LOCAL", 0)), seconds=round(seconds, 1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kernels.spill_check", description=__doc__.splitlines()[0])
    parser.add_argument("--kernel", choices=sorted(_ARGS), action="append",
                        help="kernel(s) to compile (default: all)")
    parser.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], action="append",
                        help="input dtype(s) (default: float32 and bfloat16, inference and training)")
    parser.add_argument("--candidates", action="store_true",
                        help="every candidate of kernels.tune (CANDIDATES), not only the defaults")
    args = parser.parse_args(argv)
    spilled = False
    for dtype in args.dtype or ["float32", "bfloat16"]:
        for kernel in args.kernel or sorted(_ARGS):
            for cfg in T.CANDIDATES[kernel] if args.candidates else (T.CONFIGS[kernel],):
                result = compile_config(kernel, getattr(torch, dtype), cfg=cfg)
                spilled |= result["stack_bytes"] > 0 or result["local_bytes"] > 0
                print(json.dumps(result), flush=True)
    return 1 if spilled else 0


if __name__ == "__main__":
    sys.exit(main())
