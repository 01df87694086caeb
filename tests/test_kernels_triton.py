"""The Triton MTM kernels against the reference operator and an independent loop oracle.

Without a GPU the kernels run in Triton's interpreter on CPU tensors (tests/conftest.py sets
TRITON_INTERPRET=1 before triton is first imported: triton's own library is decorated then),
so these tests run in every CI run. With a GPU the same tests run the compiled kernels on CUDA
tensors at larger shapes, and nothing is interpreted.
Interpreted programs run one by one in Python: shapes stay at <= 16 px and few channels.
"""
from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("triton", reason="triton is an optional extra (Linux x86-64 only)")

from kernels import dispatch, modconv_ref

ON_GPU = torch.cuda.is_available()
from kernels import triton_mtm as T  # noqa: E402

if not ON_GPU and not T.INTERPRETED:
    raise RuntimeError("no GPU, and the Triton kernels were not built for the interpreter: TRITON_INTERPRET=1 "
                       "must be set before triton is first imported (tests/conftest.py sets it)")

DEVICE = "cuda" if ON_GPU else "cpu"
# Channel counts grow on the GPU (block boundaries at 16/32/64 are crossed either way).
CH = 9 if ON_GPU else 1
F64 = torch.float64


@pytest.fixture(autouse=True)
def _exact_fp32(monkeypatch):
    """TF32 would make fp32 comparisons loose on the GPU; it is tested on its own below."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(T, "failure", None)


def make(seed, B=2, Ci=5, Co=7, H=4, W=4, offset_scale=1.5, mask=True, style="spatial", dtype=F64):
    """Inputs on DEVICE in float64 (cast later); offsets of a few pixels, so corners leave the map."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, Ci, H, W, generator=g, dtype=F64)
    weight = torch.randn(Co, Ci, 3, 3, generator=g, dtype=F64)
    offset = torch.randn(B, 18, H, W, generator=g, dtype=F64) * offset_scale
    m = torch.rand(B, 9, H, W, generator=g, dtype=F64) if mask else None
    s = {None: None, "global": lambda: torch.randn(B, Ci, generator=g, dtype=F64) + 1.5,
         "spatial": lambda: torch.randn(B, Ci, H, W, generator=g, dtype=F64) + 1.5}[style]
    s = s() if s is not None else None
    return [t.to(DEVICE, dtype) if t is not None else None for t in (x, weight, offset, m, s)]


def oracle(x, weight, offset, mask, style, demodulate=True, eps=1e-8):
    """A per-pixel loop from the definition (torchvision's DCN sampling, then modulation and
    expected-statistics demodulation), vectorised over channels only; float64 on the CPU."""
    x, weight, offset = x.double().cpu(), weight.double().cpu(), offset.double().cpu()
    B, Ci, H, W = x.shape
    s = torch.ones(B, Ci, H, W, dtype=F64) if style is None else style.double().cpu()
    if s.dim() == 2:
        s = s[:, :, None, None].expand(B, Ci, H, W)
    xs = x * s
    w = weight.reshape(weight.shape[0], Ci, 9)
    out = torch.zeros(B, weight.shape[0], H, W, dtype=F64)
    for b in range(B):
        for h in range(H):
            for c in range(W):
                cols = torch.zeros(Ci, 9, dtype=F64)
                for k in range(9):
                    py = h - 1 + k // 3 + offset[b, 2 * k, h, c].item()
                    px = c - 1 + k % 3 + offset[b, 2 * k + 1, h, c].item()
                    m = 1.0 if mask is None else mask[b, k, h, c].item()
                    if not (-1 < py < H and -1 < px < W):
                        continue
                    y0, x0 = math.floor(py), math.floor(px)
                    corners = ((y0, x0, (y0 + 1 - py) * (x0 + 1 - px)), (y0, x0 + 1, (y0 + 1 - py) * (px - x0)),
                               (y0 + 1, x0, (py - y0) * (x0 + 1 - px)), (y0 + 1, x0 + 1, (py - y0) * (px - x0)))
                    for yy, xx, cw in corners:
                        if 0 <= yy < H and 0 <= xx < W:
                            cols[:, k] += m * cw * xs[b, :, yy, xx]
                out[b, :, h, c] = (w * cols).sum(dim=(1, 2))
                if demodulate:
                    var = torch.zeros(weight.shape[0], dtype=F64)
                    for k in range(9):
                        yy, xx = (h - 1 + k // 3, c - 1 + k % 3) if style is not None and style.dim() == 4 else (h, c)
                        if 0 <= yy < H and 0 <= xx < W:
                            var += (w[:, :, k] ** 2 * s[b, :, yy, xx] ** 2).sum(dim=1)
                    out[b, :, h, c] /= torch.sqrt(var + eps)
    return out


def run_both(inputs, demodulate=True, grads=True, options=T.Options(), seed=0):
    """(kernel, reference) outputs and, with `grads`, their input gradients for one random gy.
    The reference runs in float64 on the same values."""
    def go(fn, cast):
        leaves = [t.detach().to(cast).requires_grad_(grads) if t is not None else None for t in inputs]
        y = fn(*leaves)
        if not grads:
            return y.detach(), []
        gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed), dtype=F64).to(y)
        return y.detach(), torch.autograd.grad(y, [t for t in leaves if t is not None], gy)
    kernel = go(lambda *a: T.deform_modconv(*a, demodulate=demodulate, options=options), inputs[0].dtype)
    ref = go(lambda *a: modconv_ref.deform_modconv(*a, demodulate=demodulate), F64)
    return kernel, ref


def assert_close(got, want, tol):
    torch.testing.assert_close(got.double(), want.double(), atol=tol, rtol=tol)


# ---------------------------------------------------------------- forward

@pytest.mark.parametrize("style,mask,demodulate", [(None, False, True), ("global", True, True),
                                                   ("spatial", True, True), ("spatial", False, False)])
def test_forward_matches_reference_and_oracle(style, mask, demodulate):
    inputs = make(1, Ci=5 * CH, Co=7 * CH, mask=mask, style=style, dtype=torch.float32)
    (y, _), (want, _) = run_both(inputs, demodulate, grads=False)
    assert y.shape == want.shape and y.dtype == torch.float32
    assert_close(y, want, 1e-5)
    assert_close(y, oracle(*inputs, demodulate=demodulate), 1e-5)


@pytest.mark.parametrize("B,H,W,Ci,Co", [(1, 1, 1, 3, 5), (3, 1, 16, 3, 5), (1, 2, 3, 3, 5), (3, 5, 8, 3, 5),
                                         (1, 16, 3, 17, 33), (2, 8, 2, 3, 5)])
def test_map_sizes_batches_and_odd_channels(B, H, W, Ci, Co):
    # Batch 1 and a prime batch; H, W in {1, 2, 3, 5, 8, 16}, non-square; no channel count is
    # a multiple of 8, and 17 and 33 cross the interpreter's 16- and 32-wide blocks raggedly.
    inputs = make(2, B=B, Ci=Ci * CH, Co=Co * CH, H=H, W=W, style="spatial", dtype=torch.float32)
    (y, _), (want, _) = run_both(inputs, grads=False)
    assert_close(y, want, 1e-5)


def test_offsets_far_outside_the_map():
    # One sample per shift: partly outside, far outside, and absurdly far (finite either way).
    x, w, off, m, s = make(3, B=3, H=3, W=3, offset_scale=0.3, style="global", dtype=torch.float32)
    shift = torch.tensor([2.5, -100.0, 1e30], device=DEVICE).view(3, 1, 1, 1)
    off = off + shift
    off[:, 1::2] -= 0.5 * shift  # dx differs from dy: the axes leave the map at different taps
    (y, grads), (want, want_grads) = run_both([x, w, off, m, s])
    assert torch.isfinite(y).all() and all(torch.isfinite(g).all() for g in grads)
    assert_close(y, want, 1e-5)
    for got, ref in zip(grads, want_grads):
        assert_close(got, ref, 1e-4)
    assert torch.count_nonzero(y[0]) > 0 and torch.count_nonzero(y[1:]) == 0


def test_offsets_on_integers_are_exact_shifts():
    # A uniform integer offset moves the sampled window: the kernel must equal a shifted conv.
    x, w, _, _, _ = make(4, B=2, Ci=3 * CH, Co=4 * CH, H=6, W=7, mask=False, style=None, dtype=torch.float32)
    off = torch.zeros(2, 18, 6, 7, device=DEVICE)
    off[:, 0::2], off[:, 1::2] = 1.0, -2.0
    y = T.deform_modconv(x, w, off, demodulate=False)
    full = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (4, 4, 4, 4)), w, padding=1)
    assert_close(y, full[..., 5:11, 2:9], 1e-5)


# ---------------------------------------------------------------- dtypes

@pytest.mark.parametrize("dtype,tol", [(torch.float16, 2e-2), (torch.bfloat16, 6e-2)])
def test_half_precision_forward_and_backward(dtype, tol):
    # In the interpreter bf16 tiles meet in an fp32 tl.dot (its bf16 dot is broken there);
    # the GPU runs bf16 natively. Inputs are rounded first, so only the arithmetic differs.
    inputs = make(5, Ci=6 * CH, Co=5 * CH, style="spatial", mask=dtype == torch.float16, dtype=dtype)
    (y, grads), (want, want_grads) = run_both(inputs)
    assert y.dtype == dtype and all(g.dtype == dtype for g in grads)
    scale = want.abs().max()
    assert_close(y / scale, want / scale, tol)
    for got, ref in zip(grads, want_grads):
        assert_close(got / ref.abs().max(), ref / ref.abs().max(), tol)


# ---------------------------------------------------------------- gradients

@pytest.mark.parametrize("style,mask", [("global", True), ("spatial", False)])
def test_gradients_match_reference_autograd(style, mask):
    # Every input requires a gradient, so d (from weight and style) is applied by autograd.
    inputs = make(6, Ci=5 * CH, Co=6 * CH, mask=mask, style=style, dtype=torch.float32)
    (y, grads), (want, want_grads) = run_both(inputs)
    assert_close(y, want, 1e-5)
    assert len(grads) == len(want_grads)
    for got, ref in zip(grads, want_grads):
        assert_close(got, ref, 1e-4)


def test_gradients_with_constant_weight_and_style_use_the_fused_demodulation():
    # Only x and the offsets need gradients: d is a constant, applied in the kernel's epilogue.
    x, w, off, m, s = make(7, Ci=4 * CH, Co=5 * CH, style="spatial", dtype=torch.float32)
    xk, offk = x.clone().requires_grad_(), off.clone().requires_grad_()
    y = T.deform_modconv(xk, w, offk, m, s)
    xr, offr = x.double().requires_grad_(), off.double().requires_grad_()
    want = modconv_ref.deform_modconv(xr, w.double(), offr, m.double(), s.double())
    gy = torch.randn_like(want)
    assert_close(y, want, 1e-5)
    for got, ref in zip(torch.autograd.grad(y, (xk, offk), gy.float()), torch.autograd.grad(want, (xr, offr), gy)):
        assert_close(got, ref, 1e-4)


@pytest.mark.skipif(ON_GPU, reason="float64 is a CPU (interpreter) check; the GPU tests compare against it")
def test_gradcheck_float64():
    g = torch.Generator().manual_seed(8)
    B, Ci, Co, H, W = 1, 2, 3, 3, 4
    x = torch.randn(B, Ci, H, W, generator=g, dtype=F64, requires_grad=True)
    weight = torch.randn(Co, Ci, 3, 3, generator=g, dtype=F64, requires_grad=True)
    # Integer part in [-2, 2], fraction in [0.2, 0.8]: away from bilinear's kinks.
    offset = (torch.randint(-2, 3, (B, 18, H, W), generator=g) + 0.2 + 0.6 * torch.rand(B, 18, H, W, generator=g))
    offset = offset.to(F64).requires_grad_()
    mask = torch.rand(B, 9, H, W, generator=g, dtype=F64, requires_grad=True)
    s = (torch.randn((B, Ci, H, W), generator=g, dtype=F64) + 2.0).requires_grad_()
    # fast_mode checks random projections of the Jacobian: a few interpreted calls, not hundreds.
    assert torch.autograd.gradcheck(lambda *a: T.deform_modconv(*a), (x, weight, offset, mask, s),
                                    eps=1e-6, atol=1e-6, fast_mode=True, check_undefined_grad=False)


def test_split_reductions_match():
    # Split-K in the forward (fp32 atomics, demodulation afterwards) and a split weight gradient:
    # what small batches use on a GPU, forced here.
    inputs = make(9, B=1, Ci=17 * CH, Co=6 * CH, H=5, W=7, style="spatial", mask=False, dtype=torch.float32)
    (y, grads), (want, want_grads) = run_both(inputs, options=T.Options(fwd_splits=2, weight_splits=2))
    assert_close(y, want, 1e-5)
    for got, ref in zip(grads, want_grads):
        assert_close(got, ref, 1e-4)


# ---------------------------------------------------------------- memory layout

def test_non_contiguous_inputs():
    x, w, off, m, s = make(10, B=1, Ci=4 * CH, Co=5 * CH, H=6, W=5, style="spatial", dtype=torch.float32)
    views = [x.transpose(2, 3).contiguous().transpose(2, 3),  # W-major strides
             w.permute(1, 0, 2, 3).contiguous().permute(1, 0, 2, 3),
             torch.cat([off, off], dim=1)[:, ::2],  # every other channel of a wider tensor
             m.contiguous(memory_format=torch.channels_last),
             torch.cat([s, s], dim=3)[..., ::2]]
    assert not any(v.is_contiguous() for v in (views[0], views[2], views[4]))
    (y, grads), (want, want_grads) = run_both(views)
    assert_close(y, want, 1e-5)
    for got, ref in zip(grads, want_grads):
        assert_close(got, ref, 1e-4)


def _nan_guarded(t: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """`t` stored in the middle of a NaN-filled buffer, laid out as the kernel reads it (so it is
    not copied): a read outside the tensor picks up NaN and shows in the result."""
    shape = t.permute(0, 2, 3, 1).shape if channels_last else t.shape
    pad = 4096
    buf = torch.full((t.numel() + 2 * pad,), float("nan"), dtype=t.dtype, device=t.device)
    view = buf[pad:pad + t.numel()].view(shape)
    view.copy_(t.permute(0, 2, 3, 1) if channels_last else t)
    return view.permute(0, 3, 1, 2) if channels_last else view


@pytest.mark.parametrize("style", ["global", "spatial"])
def test_nan_padded_inputs_catch_reads_out_of_bounds(style):
    x, w, off, m, s = make(11, B=2, Ci=5 * CH, Co=7 * CH, H=3, W=5, offset_scale=3.0, style=style,
                           dtype=torch.float32)
    guarded = [_nan_guarded(x, True), w, _nan_guarded(off, False), _nan_guarded(m, False),
               _nan_guarded(s, True) if style == "spatial" else s]
    # The kernel wrapper must not have copied them: they are already in the layout it reads.
    assert guarded[0].permute(0, 2, 3, 1).is_contiguous() and guarded[2].is_contiguous()
    leaves = [t.detach().requires_grad_() for t in guarded]
    y = T.deform_modconv(*leaves)
    gy = _nan_guarded(torch.randn(y.shape, generator=torch.Generator().manual_seed(0)).to(y), True)
    grads = torch.autograd.grad(y, leaves, gy)
    assert torch.isfinite(y).all() and all(torch.isfinite(g).all() for g in grads)
    want = modconv_ref.deform_modconv(*(t.double() for t in guarded))
    assert_close(y, want, 1e-5)


# ---------------------------------------------------------------- dispatch

def test_dispatch_choice(monkeypatch):
    monkeypatch.delenv(dispatch.FORCE_REFERENCE_ENV, raising=False)
    monkeypatch.setattr(dispatch, "_load_triton", lambda: T)
    monkeypatch.setenv(dispatch.KERNEL_ENV, "auto")
    assert dispatch.active_backend("cuda") == "triton"
    assert dispatch.active_backend("cpu") == "reference"  # the interpreter is never a default
    monkeypatch.setenv(dispatch.KERNEL_ENV, "reference")
    assert dispatch.active_backend("cuda") == "reference"
    monkeypatch.setenv(dispatch.KERNEL_ENV, "triton")
    assert dispatch.active_backend("cuda") == "triton"
    assert dispatch.active_backend("cpu") == ("triton" if T.INTERPRETED else "reference")
    monkeypatch.setenv(dispatch.FORCE_REFERENCE_ENV, "1")  # the older switch still wins
    assert dispatch.active_backend("cuda") == "reference"
    monkeypatch.delenv(dispatch.FORCE_REFERENCE_ENV)
    monkeypatch.setenv(dispatch.KERNEL_ENV, "cudnn")
    with pytest.raises(ValueError, match="STEERGAN_MTM_KERNEL='cudnn' is not one of auto, triton, reference"):
        dispatch.active_backend("cuda")


def test_dispatch_runs_the_kernel_when_forced(monkeypatch):
    calls = []
    monkeypatch.setattr(dispatch, "_load_triton", lambda: T)
    monkeypatch.setattr(T, "deform_modconv", lambda *a: calls.append(1) or T._MTMFunction.apply(
        *a[:5], modconv_ref._demodulation(a[1], a[4], a[6], 1).detach() if a[5] else None, T.Options()))
    monkeypatch.setenv(dispatch.KERNEL_ENV, "triton")
    x, w, off, m, s = make(12, B=1, Ci=3, Co=4, H=4, W=4, dtype=torch.float32)
    y = dispatch.deform_modconv(x, w, off, m, s)
    assert calls == [1]
    assert_close(y, modconv_ref.deform_modconv(x, w, off, m, s), 1e-5)
    # float64 is not a kernel dtype: the reference serves it.
    dispatch.deform_modconv(x.double(), w.double(), off.double(), m.double(), s.double())
    assert calls == [1]
    # A bad argument is the caller's error, named as the reference names it, not a kernel failure.
    with pytest.raises(ValueError, match="offset must be"):
        dispatch.deform_modconv(x, w, off[:, :9], m, s)
    assert T.failure is None


def test_tensors_too_large_for_32_bit_indices_stay_on_the_reference():
    w = torch.empty(512, 512, 3, 3, device="meta")
    assert dispatch._fits_the_kernel(torch.empty(64, 512, 32, 32, device="meta"), w)
    assert not dispatch._fits_the_kernel(torch.empty(64, 512, 256, 256, device="meta"), w)
    assert not dispatch._fits_the_kernel(torch.empty(0, 512, 8, 8, device="meta"), w)


def test_a_failing_kernel_falls_back_to_the_reference_with_one_warning(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("PTX assembly failed (simulated)")
    monkeypatch.setattr(dispatch, "_load_triton", lambda: T)
    monkeypatch.setattr(T, "forward", broken)
    monkeypatch.setenv(dispatch.KERNEL_ENV, "triton")
    x, w, off, m, s = make(13, B=1, Ci=3, Co=4, H=4, W=4, dtype=torch.float32)
    device = torch.device(DEVICE)
    with pytest.warns(RuntimeWarning, match="falls back to the pure-PyTorch reference"):
        y = dispatch.deform_modconv(x, w, off, m, s)
    assert_close(y, modconv_ref.deform_modconv(x, w, off, m, s), 1e-6)
    assert isinstance(T.failure, RuntimeError)
    assert dispatch.active_backend(device) == "reference"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dispatch.deform_modconv(x, w, off, m, s)  # no second warning


def test_a_failing_backward_kernel_falls_back_to_reference_gradients(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("out of shared memory (simulated)")
    monkeypatch.setattr(T, "backward", broken)
    x, w, off, m, s = make(14, B=1, Ci=3, Co=4, H=4, W=4, style="global", dtype=torch.float32)
    leaves = [t.clone().requires_grad_() for t in (x, w, off, m, s)]
    with pytest.warns(RuntimeWarning, match="failed"):
        grads = torch.autograd.grad(T.deform_modconv(*leaves).sum(), leaves)
    ref_leaves = [t.clone().requires_grad_() for t in (x, w, off, m, s)]
    want = torch.autograd.grad(modconv_ref.deform_modconv(*ref_leaves).sum(), ref_leaves)
    for got, ref in zip(grads, want):
        assert_close(got, ref, 1e-4)


# ---------------------------------------------------------------- the whole generator

def test_generator_renders_the_same_image_with_the_kernel(monkeypatch):
    from models.config import GeneratorConfig
    from models.document.scene import initial_state
    from models.nets.generator import Generator
    from models.render import render
    from tests.conftest import with_live_offsets

    torch.manual_seed(0)
    config = GeneratorConfig(resolution=16, z_dim=8, w_dim=8, mapping_layers=1, channels={4: 8, 8: 8, 16: 4},
                             style_res=8, objects=2, grid=2, mtm=(8,))
    g = with_live_offsets(Generator(config).eval().requires_grad_(False), scale=0.5).to(DEVICE)
    state = initial_state(config, 3)
    calls = []
    run_kernel = T.deform_modconv
    monkeypatch.setattr(dispatch, "_load_triton", lambda: T)
    monkeypatch.setattr(T, "deform_modconv", lambda *a, **k: calls.append(1) or run_kernel(*a, **k))
    monkeypatch.setenv(dispatch.KERNEL_ENV, "reference")
    want = render(g, state, extras=True)
    monkeypatch.setenv(dispatch.KERNEL_ENV, "triton")
    got = render(g, state, extras=True)
    assert len(calls) == 2  # the two MTM convolutions at 8 px
    assert any(np.abs(f).max() > 0.1 for f in got.offsets.values())  # offsets really deform
    assert np.abs(got.image.astype(int) - want.image.astype(int)).max() <= 1


# ---------------------------------------------------------------- GPU only

gpu = pytest.mark.skipif(not ON_GPU, reason="needs a CUDA device (the interpreter tests above run on the CPU)")


@gpu
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.bfloat16, 6e-2), (torch.float16, 2e-2)])
def test_gpu_training_shape(dtype, tol):
    inputs = make(20, B=8, Ci=128, Co=96, H=32, W=32, style="spatial", mask=False, dtype=dtype)
    (y, grads), (want, want_grads) = run_both(inputs)
    assert_close(y / want.abs().max(), want / want.abs().max(), tol)
    for got, ref in zip(grads, want_grads):
        assert_close(got / ref.abs().max(), ref / ref.abs().max(), tol)


@gpu
def test_gpu_tf32_is_close(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    inputs = make(21, B=2, Ci=256, Co=256, H=8, W=8, style="global", dtype=torch.float32)
    (y, _), (want, _) = run_both(inputs, grads=False)
    assert_close(y / want.abs().max(), want / want.abs().max(), 5e-3)


@gpu
def test_gpu_auto_dispatch_uses_the_kernel(monkeypatch):
    monkeypatch.delenv(dispatch.KERNEL_ENV, raising=False)
    monkeypatch.delenv(dispatch.FORCE_REFERENCE_ENV, raising=False)
    assert dispatch.active_backend() == "triton"
    x, w, off, m, s = make(22, B=1, Ci=512, Co=512, H=8, W=8, style="spatial", mask=False, dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = dispatch.deform_modconv(x, w, off, None, s)
    assert T.failure is None
    assert_close(y, modconv_ref.deform_modconv(x.double(), w.double(), off.double(), None, s.double()), 1e-4)


@pytest.mark.skipif(ON_GPU, reason="the GPU run measures for real")
def test_bench_without_cuda_says_so(tmp_path, capsys):
    from kernels import bench

    assert bench.main(["--quick", "--json", str(tmp_path / "bench.json")]) == 0
    assert "no CUDA device" in capsys.readouterr().out
    assert "no CUDA device" in (tmp_path / "bench.json").read_text()


@pytest.mark.skipif(ON_GPU, reason="the GPU run measures for real")
def test_bench_table_and_json_on_the_cpu(tmp_path, monkeypatch, capsys):
    # The GPU path's bookkeeping, run on the CPU at a toy shape: every method runs once (its
    # warm-up call) and must produce a number; the timer is a stub, the numbers mean nothing.
    from kernels import bench

    monkeypatch.setattr(bench, "DEVICE", "cpu")
    monkeypatch.setattr(bench, "_time", lambda fn, quick: 1.0)
    monkeypatch.setattr(bench, "QUICK_SHAPES", [(1, 4, 3)])
    report = bench.run_benchmark(quick=True, json_path=str(tmp_path / "bench.json"))
    rows = json.loads((tmp_path / "bench.json").read_text())["rows"]
    assert len(rows) == len(report["rows"]) == 4  # fp32 and bf16, fwd and fwd+bwd
    for row in rows:
        assert row["errors"] == {}
        assert {"cudnn", "reference", "triton"} <= set(row["ms"]) and "ours/cudnn" in row["ratios"]
    assert "fwd+bwd" in capsys.readouterr().out
