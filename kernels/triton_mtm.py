"""The MTM operator as Triton kernels: forward and backward of `deform_modconv`.

Imported only when needed (kernels.dispatch imports it lazily), since triton is optional.

The forward is an implicit GEMM, M = B*H*W output pixels, N = Co, K = 9*Ci, in channels-last
layout. Its A tile is never stored: for each (pixel, tap) the bilinear corner indices and
weights are computed once per tap, then every block of channels is gathered from the four
corners (contiguous in channels-last), modulated by the style while loading, scaled by the
DCNv2 mask and fed to tl.dot with fp32 accumulation. The demodulation d multiplies the
accumulator in the epilogue.

The backward has two kernels:
- data: per (pixel block, tap), gcol = gy @ W_k^T (the gradient of the sampled columns)
  for one channel block at a time; it scatters gcol * corner weight into the input
  gradient (fp32 atomics: several pixels read one input) and reduces gcol * sample over the
  channels in registers for the mask and offset gradients, which one program owns per
  (pixel, tap): no atomics there.
- weight: grad_W[k, ci, co] = sum_p cols[p, k, ci] * gy[p, co], the same gathered A tile,
  split over pixels into fp32 partial sums that are added afterwards (deterministic).

Modulation enters as y = core(x * s): the backward kernels compute the gradient of the
modulated input x * s, and the gradients of x and s follow from it by one multiply each.
When d needs a gradient (training), it is applied around the op by autograd instead.

Under TRITON_INTERPRET=1 (set before triton is first imported) the same kernels run on CPU
tensors in Triton's interpreter; that is how CI tests them without a GPU.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import stat
import warnings

import torch
import triton
import triton.language as tl

from . import modconv_ref

Tensor = torch.Tensor

# triton.jit decides at decoration time whether it interprets; remember what it decided.
INTERPRETED = os.environ.get("TRITON_INTERPRET", "0").strip() not in ("", "0")

# Style modes (constexpr): none, one value per (sample, channel), one per (sample, channel, pixel).
STYLE_NONE, STYLE_GLOBAL, STYLE_SPATIAL = 0, 1, 2
# Demodulation modes in the forward epilogue: none, d[b, co], d[b, h, w, co].
DEMOD_NONE, DEMOD_SAMPLE, DEMOD_PIXEL = 0, 1, 2

_OutOfMemoryError = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)  # torch < 2.5 lacks the alias

# The first failure to compile or run the kernels; from then on this process uses the reference.
failure: Exception | None = None

# Enough programs for two waves on an H100 (132 SMs): below that the work is split further.
TARGET_PROGRAMS = 264


@dataclasses.dataclass(frozen=True)
class TileConfig:
    """One tile configuration of one kernel; tests compile each for sm_90 and check spills."""
    kernel: str  # "fwd", "bwd_data" or "bwd_weight"
    block_m: int  # pixels (fwd, bwd_data); input channels (bwd_weight)
    block_n: int  # output channels
    block_k: int  # input channels (fwd, bwd_data); pixels (bwd_weight)
    num_warps: int
    num_stages: int = 2


# One configuration per kernel: @triton.autotune with several fails in the interpreter, and
# the shapes that matter (C = 256..512, H = 8..32) are all served by one tile. Each was chosen
# to compile for sm_90 without register spills, with headroom, under triton 3.6 and 3.9 alike
# (fp32 / bf16 registers, 3.6: fwd 206 / 171, bwd_data 217 / 204, bwd_weight 230 / 167);
# tests/test_kernels_spills.py checks this in CI.
CONFIGS = {
    "fwd": TileConfig("fwd", block_m=64, block_n=64, block_k=16, num_warps=8),
    "bwd_data": TileConfig("bwd_data", block_m=64, block_n=32, block_k=16, num_warps=8),
    "bwd_weight": TileConfig("bwd_weight", block_m=32, block_n=64, block_k=64, num_warps=8),
}
# What a GPU may choose instead (`python -m kernels.tune` times them there and keeps, per GPU
# model, the fastest that matches the default's output, in kernels/tuned_tiles.json). The
# first GPU benchmark found the forward 6.9x slower than cuDNN at the training shape: each
# program re-gathers its A tile for every block of 64 output channels, so wider N tiles are
# the first suspect. Each candidate compiles for sm_90 without spills in fp32 and bf16
# (tests/test_kernels_spills.py checks all of them in CI; deeper K tiles, 128x128 and
# 64x256 tiles spilled under triton 3.9 and are not here).
CANDIDATES: dict[str, tuple[TileConfig, ...]] = {
    "fwd": (CONFIGS["fwd"],
            TileConfig("fwd", block_m=64, block_n=128, block_k=16, num_warps=8),
            TileConfig("fwd", block_m=64, block_n=128, block_k=16, num_warps=8, num_stages=3),
            TileConfig("fwd", block_m=32, block_n=128, block_k=16, num_warps=4),
            TileConfig("fwd", block_m=128, block_n=64, block_k=16, num_warps=8),
            TileConfig("fwd", block_m=64, block_n=64, block_k=16, num_warps=8, num_stages=3)),
    "bwd_data": (CONFIGS["bwd_data"],
                 TileConfig("bwd_data", block_m=64, block_n=64, block_k=16, num_warps=8),
                 TileConfig("bwd_data", block_m=64, block_n=32, block_k=16, num_warps=8, num_stages=3),
                 TileConfig("bwd_data", block_m=32, block_n=32, block_k=32, num_warps=4),
                 TileConfig("bwd_data", block_m=32, block_n=64, block_k=16, num_warps=4)),
    "bwd_weight": (CONFIGS["bwd_weight"],
                   TileConfig("bwd_weight", block_m=64, block_n=64, block_k=32, num_warps=8),
                   TileConfig("bwd_weight", block_m=32, block_n=128, block_k=32, num_warps=8),
                   TileConfig("bwd_weight", block_m=64, block_n=128, block_k=32, num_warps=8)),
}
# Interpreted programs run one after another in Python: smaller tiles keep tests quick and
# make the tiny test shapes span several tiles (the boundary logic is what they test).
INTERPRETER_CONFIGS = {
    "fwd": TileConfig("fwd", block_m=32, block_n=32, block_k=16, num_warps=1),
    "bwd_data": TileConfig("bwd_data", block_m=32, block_n=16, block_k=16, num_warps=1),
    "bwd_weight": TileConfig("bwd_weight", block_m=16, block_n=32, block_k=32, num_warps=1),
}


# ---------------------------------------------------------------- device code

@triton.jit
def _add(a, b):
    """The combine function of the channel sums (tl.reduce)."""
    return a + b


@triton.jit
def _pixel_block(pid_m, B, HW, W, BLOCK_M: tl.constexpr):
    """The BLOCK_M output pixels of program `pid_m` (channels-last rows b*H*W + h*W + w): their
    index (clamped to 0 past the end, so no address leaves the tensor), validity, b, h*W+w, h, w."""
    pix = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    pix_ok = pix < B * HW
    pix = tl.where(pix_ok, pix, 0)
    b = pix // HW
    hw = pix % HW
    return pix, pix_ok, b, hw, hw // W, hw % W


@triton.jit
def _tap_geometry(off_ptr, m_ptr, b, h, w, hw, pix_ok, HW, Y_MAX, X_MAX, k, HAS_MASK: tl.constexpr,
                  ACC: tl.constexpr):
    """Bilinear geometry of tap k for a block of pixels: the top-left corner, the fractions,
    the tap mask, and whether the coordinate's clamp was inactive (its gradient passes then).
    Y_MAX = H + 1 and X_MAX = W + 1 come as floats: an int argument equal to 1 would be
    specialised into a constant."""
    dy = tl.load(off_ptr + (b * 18 + 2 * k) * HW + hw, mask=pix_ok, other=0.0).to(ACC)
    dx = tl.load(off_ptr + (b * 18 + 2 * k + 1) * HW + hw, mask=pix_ok, other=0.0).to(ACC)
    py_raw = (h - 1 + k // 3).to(ACC) + dy
    px_raw = (w - 1 + k % 3).to(ACC) + dx
    # As in the reference: beyond [-2, size + 1] nothing is sampled either way, and clamping
    # keeps floor() and the integer corner finite for huge offsets.
    py = tl.minimum(tl.maximum(py_raw, -2.0), Y_MAX)
    px = tl.minimum(tl.maximum(px_raw, -2.0), X_MAX)
    y0f = tl.floor(py)
    x0f = tl.floor(px)
    ly = py - y0f
    lx = px - x0f
    if HAS_MASK:
        tap = tl.load(m_ptr + (b * 9 + k) * HW + hw, mask=pix_ok, other=0.0).to(ACC)
    else:
        tap = ly * 0.0 + 1.0
    y_free = (py_raw >= -2.0) & (py_raw <= Y_MAX)
    x_free = (px_raw >= -2.0) & (px_raw <= X_MAX)
    return y0f.to(tl.int32), x0f.to(tl.int32), ly, lx, tap, y_free, x_free


@triton.jit
def _corner(b, yc, xc, pix_ok, H, W, CI):
    """Offset of a corner's channel 0 in the channels-last input, and whether it lies in the map.
    Outside the map the index is clamped so that even a masked-off address stays in range."""
    inside = pix_ok & (yc >= 0) & (yc < H) & (xc >= 0) & (xc < W)
    ycc = tl.minimum(tl.maximum(yc, 0), H - 1)
    xcc = tl.minimum(tl.maximum(xc, 0), W - 1)
    return ((b * H + ycc) * W + xcc) * CI, inside


@triton.jit
def _load_modulated(x_ptr, s_ptr, ptrs, ok, STYLE: tl.constexpr, ACC: tl.constexpr):
    """x (times a spatial style) at the offsets `ptrs` of the channels-last input, 0 where not ok."""
    v = tl.load(x_ptr + ptrs, mask=ok, other=0.0).to(ACC)
    if STYLE == 2:
        v = v * tl.load(s_ptr + ptrs, mask=ok, other=0.0).to(ACC)
    return v


@triton.jit
def _corners(b, y0, x0, ly, lx, pix_ok, H, W, CI):
    """The four bilinear corners of a block of pixels: (offset, inside, weight) each, computed
    once per tap and reused for every block of channels."""
    base00, in00 = _corner(b, y0, x0, pix_ok, H, W, CI)
    base01, in01 = _corner(b, y0, x0 + 1, pix_ok, H, W, CI)
    base10, in10 = _corner(b, y0 + 1, x0, pix_ok, H, W, CI)
    base11, in11 = _corner(b, y0 + 1, x0 + 1, pix_ok, H, W, CI)
    return (base00, in00, (1.0 - ly) * (1.0 - lx), base01, in01, (1.0 - ly) * lx,
            base10, in10, ly * (1.0 - lx), base11, in11, ly * lx)


@triton.jit
def _load_corners(x_ptr, s_ptr, b, pix_ok, CI, ci, ci_ok, base00, in00, base01, in01, base10, in10, base11, in11,
                  STYLE: tl.constexpr, ACC: tl.constexpr):
    """The modulated input x * s at the four corners, [pixels, channels] each, 0 outside the map.
    (Written out rather than as a helper per corner: each helper call costs in the interpreter.)"""
    ok = ci_ok[None, :]
    p00 = base00[:, None] + ci[None, :]
    p01 = base01[:, None] + ci[None, :]
    p10 = base10[:, None] + ci[None, :]
    p11 = base11[:, None] + ci[None, :]
    v00 = tl.load(x_ptr + p00, mask=in00[:, None] & ok, other=0.0).to(ACC)
    v01 = tl.load(x_ptr + p01, mask=in01[:, None] & ok, other=0.0).to(ACC)
    v10 = tl.load(x_ptr + p10, mask=in10[:, None] & ok, other=0.0).to(ACC)
    v11 = tl.load(x_ptr + p11, mask=in11[:, None] & ok, other=0.0).to(ACC)
    if STYLE == 1:
        s = tl.load(s_ptr + b[:, None] * CI + ci[None, :], mask=pix_ok[:, None] & ok, other=0.0).to(ACC)
        v00 = v00 * s
        v01 = v01 * s
        v10 = v10 * s
        v11 = v11 * s
    if STYLE == 2:
        v00 = v00 * tl.load(s_ptr + p00, mask=in00[:, None] & ok, other=0.0).to(ACC)
        v01 = v01 * tl.load(s_ptr + p01, mask=in01[:, None] & ok, other=0.0).to(ACC)
        v10 = v10 * tl.load(s_ptr + p10, mask=in10[:, None] & ok, other=0.0).to(ACC)
        v11 = v11 * tl.load(s_ptr + p11, mask=in11[:, None] & ok, other=0.0).to(ACC)
    return v00, v01, v10, v11


@triton.jit
def _gather_sample(x_ptr, s_ptr, b, pix_ok, CI, ci, ci_ok,
                   base00, in00, w00, base01, in01, w01, base10, in10, w10, base11, in11, w11,
                   STYLE: tl.constexpr, ACC: tl.constexpr):
    """The bilinear sample of the modulated input, [pixels, channels], without the tap mask."""
    v00, v01, v10, v11 = _load_corners(x_ptr, s_ptr, b, pix_ok, CI, ci, ci_ok, base00, in00, base01, in01,
                                       base10, in10, base11, in11, STYLE, ACC)
    return w00[:, None] * v00 + w01[:, None] * v01 + w10[:, None] * v10 + w11[:, None] * v11


@triton.jit
def _mtm_fwd_kernel(x_ptr, s_ptr, off_ptr, m_ptr, w_ptr, d_ptr, out_ptr,
                    B, H, W, CI, CO, CI_PER_SPLIT, Y_MAX, X_MAX,
                    STYLE: tl.constexpr, HAS_MASK: tl.constexpr, DEMOD: tl.constexpr, ATOMIC: tl.constexpr,
                    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                    ACC: tl.constexpr, DOT: tl.constexpr, PRECISION: tl.constexpr):
    """out[p, co] = d * sum_{k, ci} m_k(p) * sample_k(x * s)[p, ci] * W[k, ci, co] for one
    [BLOCK_M pixels, BLOCK_N channels] tile and one split of the input channels."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    pid_s = tl.program_id(2)
    HW = H * W
    pix, pix_ok, b, hw, h, w = _pixel_block(pid_m, B, HW, W, BLOCK_M)
    co = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    co_ok = co < CO
    ci_lo = pid_s * CI_PER_SPLIT
    ci_hi = tl.minimum(ci_lo + CI_PER_SPLIT, CI)

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC)
    for k in range(9):  # a loop, not unrolled: nine unrolled taps spill registers
        y0, x0, ly, lx, tap, y_free, x_free = _tap_geometry(off_ptr, m_ptr, b, h, w, hw, pix_ok, HW, Y_MAX, X_MAX,
                                                            k, HAS_MASK, ACC)
        b00, i00, w00, b01, i01, w01, b10, i10, w10, b11, i11, w11 = _corners(b, y0, x0, ly, lx, pix_ok, H, W, CI)
        for c0 in range(ci_lo, ci_hi, BLOCK_K):
            ci = c0 + tl.arange(0, BLOCK_K)
            ci_ok = ci < ci_hi
            a = _gather_sample(x_ptr, s_ptr, b, pix_ok, CI, ci, ci_ok,
                               b00, i00, w00, b01, i01, w01, b10, i10, w10, b11, i11, w11, STYLE, ACC)
            if HAS_MASK:
                a = a * tap[:, None]
            wk = tl.load(w_ptr + (k * CI + ci[:, None]) * CO + co[None, :], mask=ci_ok[:, None] & co_ok[None, :],
                         other=0.0)
            acc += tl.dot(a.to(DOT), wk.to(DOT), input_precision=PRECISION, out_dtype=ACC)

    out_ptrs = out_ptr + pix[:, None] * CO + co[None, :]
    out_ok = pix_ok[:, None] & co_ok[None, :]
    if ATOMIC:
        # Split over channels: partial sums meet in an fp32 buffer; d is applied afterwards.
        tl.atomic_add(out_ptrs, acc, mask=out_ok)
    else:
        if DEMOD == 1:
            acc *= tl.load(d_ptr + b[:, None] * CO + co[None, :], mask=out_ok, other=0.0).to(ACC)
        if DEMOD == 2:
            acc *= tl.load(d_ptr + pix[:, None] * CO + co[None, :], mask=out_ok, other=0.0).to(ACC)
        tl.store(out_ptrs, acc.to(out_ptr.dtype.element_ty), mask=out_ok)


@triton.jit
def _mtm_bwd_data_kernel(x_ptr, s_ptr, off_ptr, m_ptr, w_ptr, gy_ptr, gxs_ptr, goff_ptr, gm_ptr,
                         B, H, W, CI, CO, Y_MAX, X_MAX,
                         STYLE: tl.constexpr, HAS_MASK: tl.constexpr,
                         BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                         ACC: tl.constexpr, DOT: tl.constexpr, PRECISION: tl.constexpr):
    """For one block of pixels and one tap k: the gradients of the modulated input (scattered),
    of the tap's offsets and of its mask (reduced over all channels here)."""
    pid_m = tl.program_id(0)
    k = tl.program_id(1)
    HW = H * W
    pix, pix_ok, b, hw, h, w = _pixel_block(pid_m, B, HW, W, BLOCK_M)

    y0, x0, ly, lx, tap, y_free, x_free = _tap_geometry(off_ptr, m_ptr, b, h, w, hw, pix_ok, HW, Y_MAX, X_MAX,
                                                        k, HAS_MASK, ACC)
    base00, in00, w00, base01, in01, w01, base10, in10, w10, base11, in11, w11 = _corners(
        b, y0, x0, ly, lx, pix_ok, H, W, CI)

    # r_c = sum_ci gcol * (x * s at corner c). The corner weights and their derivatives are
    # per pixel, so they factor out of the channel sums: four vectors carry everything the
    # offset and mask gradients need, and no tile outlives its corner.
    r00 = tl.zeros((BLOCK_M,), dtype=ACC)
    r01 = tl.zeros((BLOCK_M,), dtype=ACC)
    r10 = tl.zeros((BLOCK_M,), dtype=ACC)
    r11 = tl.zeros((BLOCK_M,), dtype=ACC)
    co_range = tl.arange(0, BLOCK_N)
    for c0 in range(0, CI, BLOCK_K):
        ci = c0 + tl.arange(0, BLOCK_K)
        ci_ok = ci < CI
        # gcol[p, ci] = sum_co gy[p, co] * W[k, ci, co]
        gcol = tl.zeros((BLOCK_M, BLOCK_K), dtype=ACC)
        for o0 in range(0, CO, BLOCK_N):
            co = o0 + co_range
            co_ok = co < CO
            g = tl.load(gy_ptr + pix[:, None] * CO + co[None, :], mask=pix_ok[:, None] & co_ok[None, :], other=0.0)
            wk = tl.load(w_ptr + (k * CI + ci[None, :]) * CO + co[:, None], mask=co_ok[:, None] & ci_ok[None, :],
                         other=0.0)
            gcol += tl.dot(g.to(DOT), wk.to(DOT), input_precision=PRECISION, out_dtype=ACC)
        gm = gcol * tap[:, None]
        ok = ci_ok[None, :]
        if STYLE == 1:  # fold the per-channel style into gcol once instead of into each corner
            gcol = gcol * tl.load(s_ptr + b[:, None] * CI + ci[None, :], mask=pix_ok[:, None] & ok,
                                  other=0.0).to(ACC)
        # Per corner: scatter the input gradient (of x * s; several pixels and taps read one
        # input value, so atomically) and reduce gcol * value over the channels.
        ptrs = base00[:, None] + ci[None, :]
        tl.atomic_add(gxs_ptr + ptrs, gm * w00[:, None], mask=in00[:, None] & ok)
        r00 += tl.reduce(gcol * _load_modulated(x_ptr, s_ptr, ptrs, in00[:, None] & ok, STYLE, ACC), 1, _add)
        ptrs = base01[:, None] + ci[None, :]
        tl.atomic_add(gxs_ptr + ptrs, gm * w01[:, None], mask=in01[:, None] & ok)
        r01 += tl.reduce(gcol * _load_modulated(x_ptr, s_ptr, ptrs, in01[:, None] & ok, STYLE, ACC), 1, _add)
        ptrs = base10[:, None] + ci[None, :]
        tl.atomic_add(gxs_ptr + ptrs, gm * w10[:, None], mask=in10[:, None] & ok)
        r10 += tl.reduce(gcol * _load_modulated(x_ptr, s_ptr, ptrs, in10[:, None] & ok, STYLE, ACC), 1, _add)
        ptrs = base11[:, None] + ci[None, :]
        tl.atomic_add(gxs_ptr + ptrs, gm * w11[:, None], mask=in11[:, None] & ok)
        r11 += tl.reduce(gcol * _load_modulated(x_ptr, s_ptr, ptrs, in11[:, None] & ok, STYLE, ACC), 1, _add)

    # sample = sum_c w_c v_c with w00 = (1-ly)(1-lx), w01 = (1-ly)lx, w10 = ly(1-lx), w11 = ly lx.
    g_ly = (1.0 - lx) * (r10 - r00) + lx * (r11 - r01)
    g_lx = (1.0 - ly) * (r01 - r00) + ly * (r11 - r10)
    g_tap = w00 * r00 + w01 * r01 + w10 * r10 + w11 * r11
    zero = tl.zeros((BLOCK_M,), dtype=ACC)
    g_dy = tl.where(y_free, g_ly * tap, zero)
    g_dx = tl.where(x_free, g_lx * tap, zero)
    tl.store(goff_ptr + (b * 18 + 2 * k) * HW + hw, g_dy, mask=pix_ok)
    tl.store(goff_ptr + (b * 18 + 2 * k + 1) * HW + hw, g_dx, mask=pix_ok)
    if HAS_MASK:
        tl.store(gm_ptr + (b * 9 + k) * HW + hw, g_tap, mask=pix_ok)


@triton.jit
def _mtm_bwd_weight_kernel(x_ptr, s_ptr, off_ptr, m_ptr, gy_ptr, gw_ptr,
                           B, H, W, CI, CO, PIX_PER_SPLIT, Y_MAX, X_MAX,
                           STYLE: tl.constexpr, HAS_MASK: tl.constexpr,
                           BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                           ACC: tl.constexpr, DOT: tl.constexpr, PRECISION: tl.constexpr):
    """Partial grad_W[split, k, ci, co] = sum over this split's pixels of cols[p, k, ci] * gy[p, co],
    for one tap k, BLOCK_M input channels and BLOCK_N output channels."""
    pid_ck = tl.program_id(0)
    pid_n = tl.program_id(1)
    pid_s = tl.program_id(2)
    n_ci_blocks = (CI + BLOCK_M - 1) // BLOCK_M
    k = pid_ck // n_ci_blocks
    ci = (pid_ck % n_ci_blocks) * BLOCK_M + tl.arange(0, BLOCK_M)
    ci_ok = ci < CI
    co = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    co_ok = co < CO
    HW = H * W
    P = B * HW
    p_lo = pid_s * PIX_PER_SPLIT
    p_hi = tl.minimum(p_lo + PIX_PER_SPLIT, P)

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC)
    for p0 in range(p_lo, p_hi, BLOCK_K):
        pix = p0 + tl.arange(0, BLOCK_K)
        pix_ok = pix < p_hi
        pix = tl.where(pix_ok, pix, 0)
        b = pix // HW
        hw = pix % HW
        h = hw // W
        w = hw % W
        y0, x0, ly, lx, tap, _, _ = _tap_geometry(off_ptr, m_ptr, b, h, w, hw, pix_ok, HW, Y_MAX, X_MAX, k,
                                                  HAS_MASK, ACC)
        b00, i00, w00, b01, i01, w01, b10, i10, w10, b11, i11, w11 = _corners(b, y0, x0, ly, lx, pix_ok, H, W, CI)
        a = _gather_sample(x_ptr, s_ptr, b, pix_ok, CI, ci, ci_ok,
                           b00, i00, w00, b01, i01, w01, b10, i10, w10, b11, i11, w11, STYLE, ACC)
        if HAS_MASK:
            a = a * tap[:, None]  # [pixels, channels]
        g = tl.load(gy_ptr + pix[:, None] * CO + co[None, :], mask=pix_ok[:, None] & co_ok[None, :], other=0.0)
        acc += tl.dot(tl.trans(a.to(DOT)), g.to(DOT), input_precision=PRECISION, out_dtype=ACC)

    ptrs = gw_ptr + ((pid_s * 9 + k) * CI + ci[:, None]) * CO + co[None, :]
    tl.store(ptrs, acc, mask=ci_ok[:, None] & co_ok[None, :])


# ---------------------------------------------------------------- host code

_TORCH_TO_TL = {torch.float16: tl.float16, torch.bfloat16: tl.bfloat16, torch.float32: tl.float32,
                torch.float64: tl.float64}
SUPPORTED_DTYPES = tuple(_TORCH_TO_TL)


@dataclasses.dataclass(frozen=True)
class Options:
    """Knobs the tests and kernels.tune turn; None means the heuristic decides."""
    fwd_splits: int | None = None  # splits of the input channels in the forward
    weight_splits: int | None = None  # splits of the pixels in the weight gradient
    tiles: tuple[TileConfig, ...] = ()  # tile configurations to use instead (kernels.tune)


# Per GPU model, the candidates kernels.tune found fastest there: {"NVIDIA H100 80GB HBM3":
# {"fwd": {"block_m": 64, ...}, ...}}. STEERGAN_MTM_TILES names another file (the GPU run's
# own, before it is brought home).
TUNED_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tuned_tiles.json")
TILES_ENV = "STEERGAN_MTM_TILES"


MAX_TUNED_BYTES = 1 << 20  # a few hundred bytes per GPU model
MAX_TILE_VALUE = 1024  # every candidate's sizes, warps and stages are far below this


class TunedFileProblem(ValueError):
    """A tuned-tiles file that cannot be used; the message says why."""


def read_json_file(path: str, max_bytes: int = MAX_TUNED_BYTES) -> object:
    """The JSON in `path`: FileNotFoundError if there is none, TunedFileProblem (a ValueError)
    if it is not a regular file of at most `max_bytes` bytes of JSON. A FIFO or a device is
    refused before it is opened (os.stat does not block; O_NONBLOCK covers a swap in
    between), and deep nesting (RecursionError) or a number of thousands of digits is a
    problem, not a crash. kernels/ may not import models/'s checked readers: the same idea,
    in a few lines."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise TunedFileProblem("not a regular file")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise TunedFileProblem("not a regular file")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise TunedFileProblem(f"more than {max_bytes} bytes")
    try:
        return json.loads(data)
    except RecursionError:
        raise TunedFileProblem("nested too deeply") from None
    except ValueError as exc:  # bad JSON, bad UTF-8, too many digits
        raise TunedFileProblem(f"not valid JSON ({str(exc)[:120]})") from None


def _tile_fields_ok(fields: object) -> bool:
    """Plain small positive integers: True == 1 and 64.0 == 64 in Python, so without this a
    boolean or a float would pass for a candidate's value."""
    return isinstance(fields, dict) and all(
        isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_TILE_VALUE for v in fields.values())


def read_tuned(path: str) -> dict[str, dict[str, TileConfig]]:
    """A tuned-tiles file as {gpu name: {kernel: TileConfig}}. Only exact members of
    CANDIDATES are taken (a file cannot make the kernels run an unchecked tile); anything
    else, or a file that cannot be read, is skipped with a warning."""
    try:
        raw = read_json_file(path)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        warnings.warn(f"steergan: {path}: cannot be read as tuned MTM tiles ({err}); the defaults are used",
                      RuntimeWarning, stacklevel=2)
        return {}
    tuned: dict[str, dict[str, TileConfig]] = {}
    for gpu, kernels in (raw.items() if isinstance(raw, dict) else ()):
        for kernel, fields in (kernels.items() if isinstance(kernels, dict) else ()):
            match = [c for c in CANDIDATES.get(kernel, ()) if _tile_fields_ok(fields) and
                     dataclasses.asdict(c) == {"kernel": kernel, **fields}]
            if match:
                tuned.setdefault(gpu, {})[kernel] = match[0]
            else:
                warnings.warn(f"steergan: {path}: {gpu[:80]!r} {kernel[:40]!r}: {str(fields)[:200]} is not a candidate"
                              " tile; the default is used", RuntimeWarning, stacklevel=2)
    return tuned


@functools.lru_cache(maxsize=8)
def _tuned_for(device_index: int) -> dict[str, TileConfig]:
    path = os.environ.get(TILES_ENV) or TUNED_FILE
    return read_tuned(path).get(torch.cuda.get_device_name(device_index), {})


# kernels.tune times the tiles at the training shape (32 x 32 x 32 pixels); smaller problems,
# such as the studio's batch-1 renders, keep the default tiles, which nothing timed against
# the tuned ones there (a wider tile halves the programs of a problem that is already small).
TUNED_MIN_PIXELS = 8192


def _wants_tuned(device: torch.device | None, pixels: int) -> bool:
    return device is not None and device.type == "cuda" and pixels >= TUNED_MIN_PIXELS


def _configs(options: Options | None = None, device: torch.device | None = None,
             pixels: int = 0) -> dict[str, TileConfig]:
    """The tiles of each kernel: the tuned ones for this GPU model for problems of at least
    TUNED_MIN_PIXELS output pixels, else the defaults (small ones in the interpreter);
    `options.tiles` overrides either."""
    if INTERPRETED:
        configs = dict(INTERPRETER_CONFIGS)
    else:
        configs = dict(CONFIGS)
        if _wants_tuned(device, pixels):
            assert device is not None  # _wants_tuned says so
            configs.update(_tuned_for(device.index if device.index is not None else torch.cuda.current_device()))
    for tile in options.tiles if options is not None else ():
        configs[tile.kernel] = tile
    return configs


def _types(dtype: torch.dtype):
    """(accumulator type, torch accumulator dtype, dot operand type, dot precision) for inputs of `dtype`."""
    if dtype == torch.float64:  # only the interpreter tests (gradcheck) use it; dispatch never sends it here
        return tl.float64, torch.float64, tl.float64, "ieee"
    dot = _TORCH_TO_TL[dtype]
    if dtype == torch.bfloat16 and INTERPRETED:
        dot = tl.float32  # bf16 tl.dot gives garbage in the interpreter; the GPU runs it natively
    # fp32 follows torch's setting for convolutions (cudnn.allow_tf32, on by default): TF32
    # tensor cores, as cuDNN's own convolution uses; exact fp32 when the user turns it off.
    precision = "tf32" if dtype == torch.float32 and torch.backends.cudnn.allow_tf32 and not INTERPRETED \
        else "ieee"
    return tl.float32, torch.float32, dot, precision


def _splits(tiles: int, blocks: int, forced: int | None) -> int:
    """How many ways to split a reduction of `blocks` blocks so that `tiles` tiles fill the GPU."""
    if forced is not None:
        return max(1, min(forced, blocks))
    if INTERPRETED or tiles >= TARGET_PROGRAMS:
        return 1  # interpreted programs run one by one: splitting only adds work
    return max(1, min(blocks, math.ceil(TARGET_PROGRAMS / tiles)))


def _style_arg(style: Tensor | None, x_cl: Tensor):
    """(mode, tensor in the layout the kernels read): [B, Ci] or channels-last [B, H, W, Ci]."""
    if style is None:
        return STYLE_NONE, x_cl  # never read; any valid pointer
    if style.dim() == 2:
        return STYLE_GLOBAL, style.contiguous()
    return STYLE_SPATIAL, style.permute(0, 2, 3, 1).contiguous()


def _demod_arg(d: Tensor | None, b: int, co: int, out: Tensor):
    if d is None:
        return DEMOD_NONE, out
    if d.shape[-1] == 1 and d.shape[-2] == 1:
        return DEMOD_SAMPLE, d.reshape(-1, co).expand(b, co).contiguous()
    return DEMOD_PIXEL, d.permute(0, 2, 3, 1).contiguous()


def forward(x: Tensor, weight: Tensor, offset: Tensor, mask: Tensor | None, style: Tensor | None,
            d: Tensor | None, options: Options = Options()) -> Tensor:
    """d * core(x * s), no autograd: [B, Co, H, W] in channels-last memory, x's dtype."""
    b, ci, h, w = x.shape
    co = weight.shape[0]
    cfg = _configs(options, x.device, b * h * w)["fwd"]
    acc_tl, acc_torch, dot, precision = _types(x.dtype)
    x_cl = x.permute(0, 2, 3, 1).contiguous()  # free when x is already channels-last
    w_t = weight.to(x.dtype).permute(2, 3, 1, 0).reshape(9, ci, co).contiguous()
    style_mode, s = _style_arg(style, x_cl)
    offset = offset.contiguous()
    m = mask.contiguous() if mask is not None else offset

    tiles = triton.cdiv(b * h * w, cfg.block_m) * triton.cdiv(co, cfg.block_n)
    ci_blocks = triton.cdiv(ci, cfg.block_k)
    splits = _splits(tiles, ci_blocks, options.fwd_splits)
    ci_per_split = triton.cdiv(ci_blocks, splits) * cfg.block_k
    splits = triton.cdiv(ci, ci_per_split)
    atomic = splits > 1
    out = torch.zeros(b, h, w, co, device=x.device, dtype=acc_torch) if atomic else \
        torch.empty(b, h, w, co, device=x.device, dtype=x.dtype)
    demod_mode, d_arg = _demod_arg(None if atomic else d, b, co, out)
    grid = (triton.cdiv(b * h * w, cfg.block_m), triton.cdiv(co, cfg.block_n), splits)
    _mtm_fwd_kernel[grid](x_cl, s, offset, m, w_t, d_arg, out, b, h, w, ci, co, ci_per_split,
                          float(h + 1), float(w + 1),
                          STYLE=style_mode, HAS_MASK=mask is not None, DEMOD=demod_mode, ATOMIC=atomic,
                          BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k,
                          ACC=acc_tl, DOT=dot, PRECISION=precision,
                          num_warps=cfg.num_warps, num_stages=cfg.num_stages)
    y = out.permute(0, 3, 1, 2)
    if atomic:
        y = (y * d if d is not None else y).to(x.dtype)
    return y


def backward(gy: Tensor, x: Tensor, weight: Tensor, offset: Tensor, mask: Tensor | None, style: Tensor | None,
             needs: tuple[bool, ...], options: Options = Options()) -> list[Tensor | None]:
    """Gradients (x, weight, offset, mask, style) of sum(gy * core(x * s)); None where not needed."""
    b, ci, h, w = x.shape
    co = weight.shape[0]
    acc_tl, acc_torch, dot, precision = _types(x.dtype)
    x_cl = x.permute(0, 2, 3, 1).contiguous()
    w_t = weight.to(x.dtype).permute(2, 3, 1, 0).reshape(9, ci, co).contiguous()
    style_mode, s = _style_arg(style, x_cl)
    offset = offset.contiguous()
    m = mask.contiguous() if mask is not None else offset
    gy_cl = gy.to(x.dtype).permute(0, 2, 3, 1).contiguous()
    need_x, need_w, need_off, need_m, need_s = needs
    grads: list[Tensor | None] = [None] * 5

    if need_x or need_off or need_m or need_s:
        cfg = _configs(options, x.device, b * h * w)["bwd_data"]
        gxs = torch.zeros(b, h, w, ci, device=x.device, dtype=acc_torch)
        goff = torch.empty(b, 18, h, w, device=x.device, dtype=acc_torch)
        gm = torch.empty(b, 9, h, w, device=x.device, dtype=acc_torch) if mask is not None else goff
        grid: tuple[int, ...] = (triton.cdiv(b * h * w, cfg.block_m), 9)
        _mtm_bwd_data_kernel[grid](x_cl, s, offset, m, w_t, gy_cl, gxs, goff, gm, b, h, w, ci, co,
                                   float(h + 1), float(w + 1),
                                   STYLE=style_mode, HAS_MASK=mask is not None,
                                   BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k,
                                   ACC=acc_tl, DOT=dot, PRECISION=precision,
                                   num_warps=cfg.num_warps, num_stages=cfg.num_stages)
        gxs = gxs.permute(0, 3, 1, 2)  # the gradient of the modulated input x * s
        if need_x:
            grads[0] = (gxs if style is None else gxs * (style[:, :, None, None] if style.dim() == 2 else style)
                        ).to(x.dtype)
        if need_off:
            grads[2] = goff.to(offset.dtype)
        if need_m:
            assert mask is not None  # autograd asks for a mask's gradient only when there is a mask
            grads[3] = gm.to(mask.dtype)
        if need_s:
            assert style is not None  # likewise for the style
            gs = gxs * x
            grads[4] = (gs.sum(dim=(2, 3)) if style.dim() == 2 else gs).to(style.dtype)

    if need_w:
        cfg = _configs(options, x.device, b * h * w)["bwd_weight"]
        tiles = 9 * triton.cdiv(ci, cfg.block_m) * triton.cdiv(co, cfg.block_n)
        pix_blocks = triton.cdiv(b * h * w, cfg.block_k)
        splits = _splits(tiles, pix_blocks, options.weight_splits)
        pix_per_split = triton.cdiv(pix_blocks, splits) * cfg.block_k
        splits = triton.cdiv(b * h * w, pix_per_split)
        partial = torch.empty(splits, 9, ci, co, device=x.device, dtype=acc_torch)
        grid = (9 * triton.cdiv(ci, cfg.block_m), triton.cdiv(co, cfg.block_n), splits)
        _mtm_bwd_weight_kernel[grid](x_cl, s, offset, m, gy_cl, partial, b, h, w, ci, co, pix_per_split,
                                     float(h + 1), float(w + 1),
                                     STYLE=style_mode, HAS_MASK=mask is not None,
                                     BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k,
                                     ACC=acc_tl, DOT=dot, PRECISION=precision,
                                     num_warps=cfg.num_warps, num_stages=cfg.num_stages)
        grads[1] = partial.sum(0).reshape(3, 3, ci, co).permute(3, 2, 0, 1).to(weight.dtype)
    return grads


def report_failure(err: Exception) -> None:
    """Remember the first failure and warn once; kernels.dispatch then uses the reference."""
    global failure
    if failure is None:
        failure = err
        warnings.warn(f"steergan: the Triton MTM kernel failed ({type(err).__name__}: {err}); "
                      "deform_modconv falls back to the pure-PyTorch reference", RuntimeWarning, stacklevel=3)


def _reference_backward(gy: Tensor, x: Tensor, weight: Tensor, offset: Tensor, mask: Tensor | None,
                        style: Tensor | None, needs: tuple[bool, ...]) -> list[Tensor | None]:
    """The same gradients from the reference's autograd, for when the backward kernels fail."""
    inputs = [t.detach().requires_grad_(need) if t is not None else None
              for t, need in zip((x, weight, offset, mask, style), needs)]
    x_in, weight_in, offset_in, mask_in, style_in = inputs
    assert x_in is not None and weight_in is not None and offset_in is not None  # only mask and style are optional
    with torch.enable_grad():
        y = modconv_ref.deform_modconv(x_in, weight_in, offset_in, mask_in, style_in, demodulate=False)
    wanted = [t for t in inputs if t is not None and t.requires_grad]
    found = iter(torch.autograd.grad(y, wanted, gy.to(y.dtype), allow_unused=True))
    return [next(found) if t is not None and t.requires_grad else None for t in inputs]


class _MTMFunction(torch.autograd.Function):
    """y = d * core(x * s; offset, mask, W) with d a constant (None: 1)."""

    @staticmethod
    def forward(ctx, x, weight, offset, mask, style, d, options):
        ctx.save_for_backward(x, weight, offset, mask, style, d)
        ctx.options = options
        return forward(x, weight, offset, mask, style, d, options)

    @staticmethod
    def backward(ctx, gy):
        x, weight, offset, mask, style, d = ctx.saved_tensors
        if d is not None:
            gy = gy * d
        needs = tuple(ctx.needs_input_grad[:5])
        try:
            grads = backward(gy, x, weight, offset, mask, style, needs, ctx.options)
        except _OutOfMemoryError:
            raise
        except Exception as err:  # noqa: BLE001 -- a backward kernel that fails to compile: the reference works
            report_failure(err)
            grads = _reference_backward(gy, x, weight, offset, mask, style, needs)
        return (*grads, None, None)


def check_inputs(x: Tensor, weight: Tensor, offset: Tensor, mask: Tensor | None, style: Tensor | None) -> None:
    """The reference's shape checks, plus what the kernels need of dtypes and devices."""
    modconv_ref._check_deform(x, weight, offset, mask)
    modconv_ref._check_style(style, x)
    if x.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"x must be float16, bfloat16, float32 or float64 for the Triton kernel, got {x.dtype}")
    for name, t in (("weight", weight), ("offset", offset), ("mask", mask), ("style", style)):
        if t is not None and t.device != x.device:
            raise ValueError(f"{name} is on {t.device} but x is on {x.device}")
        if t is not None and not t.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got {t.dtype}")


def deform_modconv(x: Tensor, weight: Tensor, offset: Tensor, mask: Tensor | None = None,
                   style: Tensor | None = None, demodulate: bool = True, eps: float = 1e-8,
                   options: Options = Options()) -> Tensor:
    """The MTM operator on Triton kernels; the semantics of kernels.modconv_ref.deform_modconv."""
    check_inputs(x, weight, offset, mask, style)
    d = modconv_ref._demodulation(weight, style, eps, padding=1) if demodulate else None
    if d is not None and torch.is_grad_enabled() and d.requires_grad:
        # Training: d depends on the weight and style, so autograd applies it around the op.
        return _MTMFunction.apply(x, weight, offset, mask, style, None, options) * d.to(x.dtype)
    return _MTMFunction.apply(x, weight, offset, mask, style, d.to(x.dtype) if d is not None else None, options)
