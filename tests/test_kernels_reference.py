"""The reference MTM operator and modulated convolution against independent oracles.

The oracle below is a slow loop written from the definition (torchvision's DCN sampling
rules, then modulation and demodulation), in plain Python floats; it never calls the
code under test.
"""
from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import kernels
from kernels import active_backend, deform_modconv, dispatch, modconv_ref, modulated_conv2d

F64 = torch.float64


# ---------------------------------------------------------------- the oracle

def _bilinear(plane, y, x):
    """torchvision's bilinear_interpolate: 0 outside (-1, H) x (-1, W), each corner outside the map 0."""
    h, w = len(plane), len(plane[0])
    if y <= -1 or y >= h or x <= -1 or x >= w:
        return 0.0
    y0, x0 = math.floor(y), math.floor(x)
    ly, lx = y - y0, x - x0
    total = 0.0
    for yc, xc, cw in ((y0, x0, (1 - ly) * (1 - lx)), (y0, x0 + 1, (1 - ly) * lx),
                       (y0 + 1, x0, ly * (1 - lx)), (y0 + 1, x0 + 1, ly * lx)):
        if 0 <= yc < h and 0 <= xc < w:
            total += cw * plane[yc][xc]
    return total


def oracle(x, weight, offset, mask=None, style=None, demodulate=True, eps=1e-8):
    """d[b,o,h,w] * sum_{i,ky,kx} W[o,i,ky,kx] * m * bilinear(x[b,i] * s[b,i], p + p_k + dp_k)."""
    B, Ci, H, W = x.shape
    Co = weight.shape[0]
    xs, ws, offs = x.tolist(), weight.tolist(), offset.tolist()
    ms = mask.tolist() if mask is not None else None
    if style is None:
        s = [[[[1.0] * W for _ in range(H)] for _ in range(Ci)] for _ in range(B)]
    elif style.dim() == 2:
        s = [[[[style[b, i].item()] * W for _ in range(H)] for i in range(Ci)] for b in range(B)]
    else:
        s = style.tolist()
    out = [[[[0.0] * W for _ in range(H)] for _ in range(Co)] for _ in range(B)]
    for b in range(B):
        modulated = [[[xs[b][i][r][c] * s[b][i][r][c] for c in range(W)] for r in range(H)] for i in range(Ci)]
        for h in range(H):
            for w in range(W):
                # samples[i][k]: the (masked) bilinear sample of channel i for tap k
                samples = [[0.0] * 9 for _ in range(Ci)]
                for ky in range(3):
                    for kx in range(3):
                        k = ky * 3 + kx
                        py = h - 1 + ky + offs[b][2 * k][h][w]
                        px = w - 1 + kx + offs[b][2 * k + 1][h][w]
                        m = ms[b][k][h][w] if ms is not None else 1.0
                        for i in range(Ci):
                            samples[i][k] = m * _bilinear(modulated[i], py, px)
                for o in range(Co):
                    acc = sum(ws[o][i][k // 3][k % 3] * samples[i][k] for i in range(Ci) for k in range(9))
                    if demodulate:
                        # Expected statistics: sum of (s W)^2 over the taps of the zero-padded
                        # 3x3 window; for a global style this is the classic sum over all taps.
                        if style is not None and style.dim() == 4:
                            var = sum(ws[o][i][ky][kx] ** 2 * s[b][i][h - 1 + ky][w - 1 + kx] ** 2
                                      for i in range(Ci) for ky in range(3) for kx in range(3)
                                      if 0 <= h - 1 + ky < H and 0 <= w - 1 + kx < W)
                        else:
                            var = sum(ws[o][i][ky][kx] ** 2 * s[b][i][0][0] ** 2
                                      for i in range(Ci) for ky in range(3) for kx in range(3))
                        acc /= math.sqrt(var + eps)
                    out[b][o][h][w] = acc
    return torch.tensor(out, dtype=F64)


def make_inputs(seed, B=2, Ci=3, Co=4, H=5, W=6, offset_scale=1.5, mask=False, style=None):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, Ci, H, W, generator=g, dtype=F64)
    weight = torch.randn(Co, Ci, 3, 3, generator=g, dtype=F64)
    offset = torch.randn(B, 18, H, W, generator=g, dtype=F64) * offset_scale
    m = torch.rand(B, 9, H, W, generator=g, dtype=F64) if mask else None
    if style == "global":
        s = torch.randn(B, Ci, generator=g, dtype=F64)
    elif style == "spatial":
        s = torch.randn(B, Ci, H, W, generator=g, dtype=F64)
    else:
        s = None
    return x, weight, offset, m, s


def assert_matches_oracle(x, weight, offset, mask, style, demodulate):
    got = deform_modconv(x, weight, offset, mask=mask, style=style, demodulate=demodulate)
    want = oracle(x, weight, offset, mask=mask, style=style, demodulate=demodulate)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)


# ---------------------------------------------------------------- deform_modconv vs the oracle

@pytest.mark.parametrize("style", [None, "global", "spatial"])
@pytest.mark.parametrize("mask", [False, True])
@pytest.mark.parametrize("demodulate", [True, False])
def test_random_fractional_offsets(style, mask, demodulate):
    x, w, off, m, s = make_inputs(1, B=3, mask=mask, style=style)
    assert_matches_oracle(x, w, off, m, s, demodulate)


@pytest.mark.parametrize("shift", [3.0, -3.0, 7.5, -7.5, 100.0, -100.0, 2.25, -1.0])
def test_offsets_leaving_the_map(shift):
    x, w, off, m, s = make_inputs(2, B=1, H=4, W=5, offset_scale=0.3, mask=True, style="spatial")
    off = off + shift
    off[:, 1::2] -= 0.5 * shift  # dx differs from dy, so both axes cross the edge at different taps
    assert_matches_oracle(x, w, off, m, s, True)


def test_large_offsets_give_zero():
    x, w, off, _, s = make_inputs(3, B=1, style="global")
    out = deform_modconv(x, w, torch.full_like(off, 100.0), style=s)
    assert torch.count_nonzero(out) == 0
    assert torch.isfinite(deform_modconv(x, w, torch.full_like(off, 1e30))).all()


@pytest.mark.parametrize("H,W", [(1, 1), (1, 4), (2, 1), (2, 2), (3, 7), (6, 2)])
@pytest.mark.parametrize("style", [None, "spatial"])
def test_tiny_and_non_square_maps(H, W, style):
    x, w, off, m, s = make_inputs(4, B=2, Ci=2, Co=3, H=H, W=W, mask=True, style=style)
    assert_matches_oracle(x, w, off, m, s, True)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), B=st.integers(1, 2), Ci=st.integers(1, 3), Co=st.integers(1, 3),
       H=st.integers(1, 5), W=st.integers(1, 5), offset_scale=st.sampled_from([0.0, 0.5, 2.0, 6.0]),
       mask=st.booleans(), style=st.sampled_from([None, "global", "spatial"]), demodulate=st.booleans())
def test_property_matches_oracle(seed, B, Ci, Co, H, W, offset_scale, mask, style, demodulate):
    x, w, off, m, s = make_inputs(seed, B, Ci, Co, H, W, offset_scale, mask, style)
    assert_matches_oracle(x, w, off, m, s, demodulate)


# ---------------------------------------------------------------- integer offsets vs plain convolutions

@pytest.mark.parametrize("style", [None, "global", "spatial"])
@pytest.mark.parametrize("demodulate", [True, False])
def test_zero_offsets_equal_modulated_conv2d(style, demodulate):
    x, w, off, _, s = make_inputs(5, B=3, H=7, W=5, style=style)
    got = deform_modconv(x, w, torch.zeros_like(off), style=s, demodulate=demodulate)
    torch.testing.assert_close(got, modulated_conv2d(x, w, s, demodulate=demodulate), atol=1e-12, rtol=0)


@pytest.mark.parametrize("dy,dx", [(1, 0), (0, -2), (-3, 2), (4, 5)])
def test_uniform_integer_offset_is_a_shifted_conv(dy, dx):
    x, w, _, _, s = make_inputs(6, B=2, H=6, W=7, style="global")
    H, W = x.shape[-2:]
    off = torch.zeros(2, 18, H, W, dtype=F64)
    off[:, 0::2], off[:, 1::2] = dy, dx
    # Output pixel (h, w) is the plain conv evaluated at (h + dy, w + dx) of a zero-extended map.
    P = 6
    full = modulated_conv2d(F.pad(x, (P, P, P, P)), w, s)
    want = full[..., P + dy:P + dy + H, P + dx:P + dx + W]
    torch.testing.assert_close(deform_modconv(x, w, off, style=s), want, atol=1e-12, rtol=0)


def test_integer_offsets_per_tap_give_a_dilated_conv():
    x, w, _, _, _ = make_inputs(7, B=1, H=6, W=6)
    off = torch.zeros(1, 18, 6, 6, dtype=F64)
    for k in range(9):  # tap (ky, kx) moves one step further out: dilation 2
        off[:, 2 * k], off[:, 2 * k + 1] = k // 3 - 1, k % 3 - 1
    want = F.conv2d(x, w, padding=2, dilation=2)
    torch.testing.assert_close(deform_modconv(x, w, off, demodulate=False), want, atol=1e-12, rtol=0)


# ---------------------------------------------------------------- modulated_conv2d

@pytest.mark.parametrize("k,padding", [(3, 1), (1, 0)])
@pytest.mark.parametrize("demodulate", [True, False])
def test_global_style_equals_stylegan2_grouped_conv(k, padding, demodulate):
    g = torch.Generator().manual_seed(8)
    B, Ci, Co = 3, 4, 5
    x = torch.randn(B, Ci, 6, 5, generator=g, dtype=F64)
    weight = torch.randn(Co, Ci, k, k, generator=g, dtype=F64)
    style = torch.randn(B, Ci, generator=g, dtype=F64)
    # StyleGAN2 as published: modulate the weight per sample, demodulate it, one grouped conv.
    wb = weight[None] * style[:, None, :, None, None]
    if demodulate:
        wb = wb * torch.rsqrt(wb.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
    want = F.conv2d(x.reshape(1, B * Ci, 6, 5), wb.reshape(B * Co, Ci, k, k), padding=padding, groups=B)
    got = modulated_conv2d(x, weight, style, demodulate=demodulate, padding=padding)
    torch.testing.assert_close(got, want.reshape(B, Co, *want.shape[-2:]), atol=1e-12, rtol=1e-12)


def test_no_style_is_demodulated_plain_conv():
    x, w, _, _, _ = make_inputs(9)
    want = F.conv2d(x, w, padding=1) * torch.rsqrt(w.square().sum(dim=(1, 2, 3)) + 1e-8).view(1, -1, 1, 1)
    torch.testing.assert_close(modulated_conv2d(x, w), want, atol=1e-12, rtol=0)
    torch.testing.assert_close(modulated_conv2d(x, w, demodulate=False), F.conv2d(x, w, padding=1))


def test_constant_spatial_style_equals_global_style():
    x, w, off, m, s = make_inputs(10, B=2, H=5, W=5, mask=True, style="global")
    field = s[:, :, None, None].expand(-1, -1, 5, 5)
    # The interior (away from the zero padding) sees the full window, so demodulation agrees there.
    for got, want in ((modulated_conv2d(x, w, field), modulated_conv2d(x, w, s)),
                      (deform_modconv(x, w, off, m, field), deform_modconv(x, w, off, m, s))):
        torch.testing.assert_close(got[..., 1:-1, 1:-1], want[..., 1:-1, 1:-1], atol=1e-12, rtol=1e-12)
    # Without demodulation the padding plays no part: equal everywhere.
    torch.testing.assert_close(modulated_conv2d(x, w, field, demodulate=False),
                               modulated_conv2d(x, w, s, demodulate=False), atol=1e-12, rtol=1e-12)
    # With a 1x1 kernel (no padding at all) equal everywhere, demodulated too.
    w1 = w[:, :, :1, :1].contiguous()
    torch.testing.assert_close(modulated_conv2d(x, w1, field, padding=0), modulated_conv2d(x, w1, s, padding=0),
                               atol=1e-12, rtol=1e-12)


def test_spatial_demodulation_uses_expected_statistics():
    # d depends only on the style and weight, never on x: scaling x scales y exactly.
    x, w, off, _, s = make_inputs(11, style="spatial")
    for op in (lambda t: modulated_conv2d(t, w, s), lambda t: deform_modconv(t, w, off, style=s)):
        torch.testing.assert_close(op(3.0 * x), 3.0 * op(x), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_lower_precision_dtypes(dtype):
    x, w, off, m, s = make_inputs(12, mask=True, style="spatial")
    got = deform_modconv(x.to(dtype), w.to(dtype), off.to(dtype), m.to(dtype), s.to(dtype))
    assert got.dtype == dtype
    tol = 1e-4 if dtype == torch.float32 else 0.15
    torch.testing.assert_close(got.double(), deform_modconv(x, w, off.to(dtype).double(), m, s), atol=tol, rtol=tol)


# ---------------------------------------------------------------- gradients

def _fractional_offsets(g, *shape):
    # Integer part in [-2, 2], fractional part in [0.2, 0.8]: far from the kinks of bilinear.
    return (torch.randint(-2, 3, shape, generator=g) + 0.2 + 0.6 * torch.rand(shape, generator=g)).to(F64)


@pytest.mark.parametrize("style_kind", ["global", "spatial"])
def test_gradcheck(style_kind):
    g = torch.Generator().manual_seed(13)
    B, Ci, Co, H, W = 1, 2, 2, 3, 4
    x = torch.randn(B, Ci, H, W, generator=g, dtype=F64, requires_grad=True)
    weight = torch.randn(Co, Ci, 3, 3, generator=g, dtype=F64, requires_grad=True)
    offset = _fractional_offsets(g, B, 18, H, W).requires_grad_()
    mask = torch.rand(B, 9, H, W, generator=g, dtype=F64, requires_grad=True)
    shape = (B, Ci) if style_kind == "global" else (B, Ci, H, W)
    style = (torch.randn(shape, generator=g, dtype=F64) + 2.0).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda *a: deform_modconv(*a, demodulate=True), (x, weight, offset, mask, style), eps=1e-6, atol=1e-6)


def test_gradcheck_modulated_conv2d_spatial():
    g = torch.Generator().manual_seed(14)
    x = torch.randn(2, 2, 3, 3, generator=g, dtype=F64, requires_grad=True)
    weight = torch.randn(3, 2, 3, 3, generator=g, dtype=F64, requires_grad=True)
    style = torch.randn(2, 2, 3, 3, generator=g, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(modulated_conv2d, (x, weight, style), eps=1e-6, atol=1e-6)


# ---------------------------------------------------------------- torchvision, where installed

@pytest.mark.parametrize("mask", [False, True])
def test_matches_torchvision(mask):
    ops = pytest.importorskip("torchvision.ops")
    x, w, off, m, s = make_inputs(15, B=2, H=6, W=5, offset_scale=2.5, mask=mask, style="global")
    want = ops.deform_conv2d(x, off, w, padding=1, mask=m)
    torch.testing.assert_close(deform_modconv(x, w, off, m, demodulate=False), want, atol=1e-10, rtol=1e-10)
    d = torch.rsqrt((s.square() @ w.square().sum(dim=(2, 3)).t()) + 1e-8)[:, :, None, None]
    want_mod = d * ops.deform_conv2d(x * s[:, :, None, None], off, w, padding=1, mask=m)
    torch.testing.assert_close(deform_modconv(x, w, off, m, s), want_mod, atol=1e-10, rtol=1e-10)


# ---------------------------------------------------------------- argument checking

def _bad(**overrides):
    x, w, off, m, s = make_inputs(16, B=2, Ci=3, Co=4, H=8, W=8, mask=True, style="global")
    args = dict(x=x, weight=w, offset=off, mask=m, style=s)
    args.update({k: torch.zeros(v, dtype=F64) for k, v in overrides.items()})
    return args


@pytest.mark.parametrize("overrides,name", [
    (dict(offset=(2, 9, 8, 8)), "offset must be [B, 18, H, W] = [2, 18, 8, 8], got [2, 9, 8, 8]"),
    (dict(offset=(2, 18, 8, 7)), "offset"),
    (dict(mask=(2, 18, 8, 8)), "mask must be [B, 9, H, W] = [2, 9, 8, 8]"),
    (dict(style=(2, 4)), "style"),
    (dict(style=(2, 3, 4, 4)), "style"),
    (dict(weight=(4, 3, 1, 1)), "weight must be [Co, Ci, 3, 3]"),
    (dict(weight=(4, 2, 3, 3)), "weight"),
    (dict(x=(3, 8, 8)), "x must be [B, Ci, H, W]"),
])
def test_bad_shapes_name_the_argument(overrides, name):
    with pytest.raises(ValueError) as err:
        deform_modconv(**_bad(**overrides))
    assert name in str(err.value)


def test_modulated_conv2d_bad_shapes():
    x, w, _, _, _ = make_inputs(17, B=2, Ci=3)
    with pytest.raises(ValueError, match="style"):
        modulated_conv2d(x, w, torch.ones(2, 5))
    with pytest.raises(ValueError, match="weight"):
        modulated_conv2d(x, torch.ones(4, 2, 3, 3, dtype=F64))


# ---------------------------------------------------------------- dispatcher

class _FakeKernel:
    """Stands in for kernels.triton_mtm (triton may not be installed): counts calls, runs the reference."""
    INTERPRETED = False
    failure = None
    calls = 0

    def check_inputs(self, *args):
        pass

    def deform_modconv(self, *args):
        _FakeKernel.calls += 1
        return modconv_ref.deform_modconv(*args)


def test_cpu_uses_the_reference(monkeypatch):
    monkeypatch.delenv(dispatch.FORCE_REFERENCE_ENV, raising=False)
    monkeypatch.delenv(dispatch.KERNEL_ENV, raising=False)
    assert active_backend("cpu") == "reference"
    assert active_backend(torch.device("cpu")) == "reference"
    assert active_backend() in ("reference", "triton")
    x, w, off, m, s = make_inputs(18, mask=True, style="spatial")
    torch.testing.assert_close(kernels.deform_modconv(x, w, off, m, s), modconv_ref.deform_modconv(x, w, off, m, s))


def test_cuda_device_uses_the_kernel_unless_forced(monkeypatch):
    monkeypatch.setattr(dispatch, "_load_triton", lambda: _FakeKernel())
    monkeypatch.delenv(dispatch.FORCE_REFERENCE_ENV, raising=False)
    monkeypatch.delenv(dispatch.KERNEL_ENV, raising=False)
    assert active_backend("cuda") == "triton"
    assert active_backend("cpu") == "reference"
    monkeypatch.setenv(dispatch.FORCE_REFERENCE_ENV, "1")
    assert active_backend("cuda") == "reference"
    monkeypatch.setenv(dispatch.FORCE_REFERENCE_ENV, "0")
    assert active_backend("cuda") == "triton"
    monkeypatch.setenv(dispatch.KERNEL_ENV, "reference")
    assert active_backend("cuda") == "reference"


def test_force_reference_skips_the_kernel(monkeypatch):
    # CPU tensors never reach the kernel; fake a CUDA device so the choice is exercised here.
    monkeypatch.setattr(dispatch, "_load_triton", lambda: _FakeKernel())
    monkeypatch.delenv(dispatch.KERNEL_ENV, raising=False)
    monkeypatch.setenv(dispatch.FORCE_REFERENCE_ENV, "1")
    assert dispatch._triton_backend(torch.device("cuda"), warn=True) is None
    monkeypatch.delenv(dispatch.FORCE_REFERENCE_ENV)
    assert isinstance(dispatch._triton_backend(torch.device("cuda"), warn=True), _FakeKernel)


def test_missing_triton_warns_once(monkeypatch):
    monkeypatch.setattr(dispatch, "_load_triton", lambda: None)
    monkeypatch.setattr(dispatch, "_warned_no_triton", False)
    monkeypatch.delenv(dispatch.FORCE_REFERENCE_ENV, raising=False)
    monkeypatch.delenv(dispatch.KERNEL_ENV, raising=False)
    with pytest.warns(RuntimeWarning, match="triton is not installed"):
        assert dispatch._triton_backend(torch.device("cuda"), warn=True) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dispatch._triton_backend(torch.device("cuda"), warn=True) is None
        assert active_backend("cuda") == "reference"  # the status bar never warns


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_match_cpu():
    x, w, off, m, s = make_inputs(19, mask=True, style="spatial")
    cpu = deform_modconv(x, w, off, m, s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gpu = deform_modconv(*(t.cuda() for t in (x, w, off, m, s)))
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-10, rtol=1e-10)
