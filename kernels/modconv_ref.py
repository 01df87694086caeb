"""Pure-PyTorch reference operators: modulated convolution and the MTM operator.

Both apply the modulation to the *input* (conv(x * s, W) == conv(x, W * s) per sample),
so the weight stays shared across the batch and no grouped convolution is needed; the
demodulation d is applied to the output. These are differentiable, run on any device and
float dtype, and are the ground truth that a CUDA kernel must match.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

Tensor = torch.Tensor

# Tap order of a 3x3 kernel: k = ky * 3 + kx (row-major), as in torchvision's deform_conv2d.
_TAPS = 9


def _shape(t: Tensor) -> list[int]:
    return list(t.shape)


def _check_style(style: Tensor | None, x: Tensor) -> None:
    if style is None:
        return
    b, ci, h, w = x.shape
    if _shape(style) not in ([b, ci], [b, ci, h, w]):
        raise ValueError(
            f"style must be [B, Ci] = [{b}, {ci}] or [B, Ci, H, W] = [{b}, {ci}, {h}, {w}], "
            f"got {_shape(style)}"
        )


def _check_x_weight(x: Tensor, weight: Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f"x must be [B, Ci, H, W], got {_shape(x)}")
    if weight.dim() != 4 or weight.shape[1] != x.shape[1]:
        raise ValueError(f"weight must be [Co, Ci, k, k] with Ci = {x.shape[1]}, got {_shape(weight)}")


def _modulate(x: Tensor, style: Tensor | None) -> Tensor:
    if style is None:
        return x
    return x * (style[:, :, None, None] if style.dim() == 2 else style)


def _demodulation(weight: Tensor, style: Tensor | None, eps: float, padding: int) -> Tensor:
    """d such that d * conv(x * s, W) has unit expected variance per output.

    Global style: d[b, o] = rsqrt(sum_{i,k} (s[b,i] W[o,i,k])^2 + eps), shape [B, Co, 1, 1]
    (or [1, Co, 1, 1] without a style). Spatial style: expected statistics (SSN),
    d = rsqrt(conv(s^2, W^2) + eps), shape [B, Co, H', W'] -- deliberately not the
    sample's own statistics, so that resampling one block leaves the others unchanged.
    """
    w2 = weight.square()
    if style is None:
        return torch.rsqrt(w2.sum(dim=(1, 2, 3)) + eps).view(1, -1, 1, 1)
    if style.dim() == 2:
        return torch.rsqrt(style.square() @ w2.sum(dim=(2, 3)).t() + eps)[:, :, None, None]
    return torch.rsqrt(F.conv2d(style.square(), w2, padding=padding) + eps)


def smooth_demod_taps(weight: Tensor) -> Tensor:
    """What `smooth_demodulation` needs of a 3x3 weight [Co, Ci, 3, 3], as [9, Co, Ci]: the sum
    of W^2 over all taps; over the taps of row ky = 0, row ky = 2, column kx = 0, column kx = 2;
    and W^2 at the four corner taps. It depends on the weight only: compute it once per weight."""
    if weight.dim() != 4 or weight.shape[2:] != (3, 3):
        raise ValueError(f"smooth demodulation is for 3x3 weights [Co, Ci, 3, 3], got {_shape(weight)}")
    w2 = weight.square()
    rows, cols = w2.sum(dim=3), w2.sum(dim=2)  # [Co, Ci, ky], [Co, Ci, kx]
    return torch.stack([w2.sum(dim=(2, 3)), rows[:, :, 0], rows[:, :, 2], cols[:, :, 0], cols[:, :, 2],
                        w2[:, :, 0, 0], w2[:, :, 0, 2], w2[:, :, 2, 0], w2[:, :, 2, 2]])


def smooth_demodulation(style: Tensor, taps: Tensor, eps: float = 1e-8) -> Tensor:
    """SSN's demodulation of a 3x3 convolution (padding 1) with a spatial style [B, Ci, H, W],
    computed as if the style were constant over each 3x3 window:
    d[o](x) = rsqrt(sum_i s_i(x)^2 * sum_{taps k inside the map} W[o, i, k]^2 + eps).
    `taps` = smooth_demod_taps(W).

    Why: the exact d = rsqrt(conv3x3(s^2, W^2)) costs as much as the convolution itself, half
    a preview's convolution time on the CPU. This is one 1x1 convolution plus corrections on
    the border rows and columns (the taps that fall on the zero padding), about 9x fewer
    operations. It equals the exact d wherever the style is constant over the window
    (tested, borders included) and differs slightly where it varies: the studio uses it
    only for drag previews, at resolutions where the style field is smooth (layers.py).
    """
    if taps.dim() != 3 or taps.shape[0] != 9 or style.dim() != 4 or style.shape[1] != taps.shape[2]:
        raise ValueError(f"smooth_demodulation takes a style [B, Ci, H, W] and taps [9, Co, Ci], got style "
                         f"{_shape(style)} and taps {_shape(taps)}")
    s2 = style.square()

    def weigh(k: int, s: Tensor) -> Tensor:  # sum_i taps[k][o, i] s[b, i, ...]
        return torch.einsum("oi,bi...->bo...", taps[k], s)

    d = F.conv2d(s2, taps[0][:, :, None, None])
    # The top row has no taps ky = 0 (they read the padding), the bottom row none with ky = 2,
    # and likewise for columns; a corner lost both, so its corner tap is added back once.
    d[:, :, 0, :] -= weigh(1, s2[:, :, 0, :])
    d[:, :, -1, :] -= weigh(2, s2[:, :, -1, :])
    d[:, :, :, 0] -= weigh(3, s2[:, :, :, 0])
    d[:, :, :, -1] -= weigh(4, s2[:, :, :, -1])
    for k, (y, x) in enumerate(((0, 0), (0, -1), (-1, 0), (-1, -1)), start=5):
        d[:, :, y, x] += weigh(k, s2[:, :, y, x])
    return torch.rsqrt(d.clamp_min(0) + eps)


def modulated_conv2d(x: Tensor, weight: Tensor, style: Tensor | None = None, demodulate: bool = True,
                     eps: float = 1e-8, padding: int = 1) -> Tensor:
    """y = d * conv2d(x * s, W), stride 1.

    x: [B, Ci, H, W]; weight: [Co, Ci, k, k]; style: None (s = 1), [B, Ci] (StyleGAN2) or
    [B, Ci, H, W] (spatially varying, SSN). demodulate=False gives d = 1. `padding` is the
    zero padding of the convolution (1 for 3x3, 0 for 1x1 keeps the size).
    """
    _check_x_weight(x, weight)
    _check_style(style, x)
    y = F.conv2d(_modulate(x, style), weight, padding=padding)
    if demodulate:
        y = y * _demodulation(weight, style, eps, padding)
    return y


def _check_deform(x: Tensor, weight: Tensor, offset: Tensor, mask: Tensor | None) -> None:
    _check_x_weight(x, weight)
    b, ci, h, w = x.shape
    if weight.shape[2:] != (3, 3):
        raise ValueError(f"weight must be [Co, Ci, 3, 3] = [{weight.shape[0]}, {ci}, 3, 3], got {_shape(weight)}")
    if _shape(offset) != [b, 2 * _TAPS, h, w]:
        raise ValueError(f"offset must be [B, 18, H, W] = [{b}, 18, {h}, {w}], got {_shape(offset)}")
    if mask is not None and _shape(mask) != [b, _TAPS, h, w]:
        raise ValueError(f"mask must be [B, 9, H, W] = [{b}, 9, {h}, {w}], got {_shape(mask)}")


def _deform_columns(x: Tensor, offset: Tensor, mask: Tensor | None) -> Tensor:
    """Bilinearly sampled columns [B, Ci * 9, H * W], ordered (channel, tap) like weight.view(Co, -1).

    One grid_sample call does all taps and channels: a sample point's corners and weights
    depend only on (b, tap, pixel), and grid_sample's zero padding is torchvision's rule
    (a corner outside the map contributes 0). Gathering the four corners by hand was 4-9x
    slower on the CPU (4.9-9.6 ms against 1.1 ms for 128 channels at 16 x 16, one thread)
    and made the 16 px MTM layers the costliest of the 128 px generator.
    """
    b, ci, h, w = x.shape
    # Coordinates in at least float32: half precision cannot resolve fractions at y ~ 100s;
    # the samples are taken in that precision too (grid_sample wants one dtype for both).
    cdt = torch.promote_types(offset.dtype, torch.float32)
    off = offset.to(cdt).reshape(b, _TAPS, 2, h, w)
    taps = torch.arange(_TAPS, device=x.device)
    ky = (taps // 3).to(cdt).view(1, _TAPS, 1, 1)
    kx = (taps % 3).to(cdt).view(1, _TAPS, 1, 1)
    hh = torch.arange(h, device=x.device, dtype=cdt).view(1, 1, h, 1)
    ww = torch.arange(w, device=x.device, dtype=cdt).view(1, 1, 1, w)
    # Points beyond [-2, size + 1] sample nothing either way; clamping keeps the coordinates
    # finite for huge offsets, and its zero gradient there is the true one.
    py = (hh - 1 + ky + off[:, :, 0]).clamp(-2.0, h + 1.0)
    px = (ww - 1 + kx + off[:, :, 1]).clamp(-2.0, w + 1.0)
    # Pixel coordinates -> grid_sample's [-1, 1] (align_corners=False: pixel i is centred at
    # (2i + 1) / size - 1, which also works for a map one pixel wide).
    grid = torch.stack([(2 * px + 1) / w - 1, (2 * py + 1) / h - 1], dim=-1).reshape(b, _TAPS * h, w, 2)
    cols = F.grid_sample(x.to(cdt), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    cols = cols.reshape(b, ci, _TAPS, h * w)
    if mask is not None:
        cols = cols * mask.to(cdt).reshape(b, 1, _TAPS, h * w)
    return cols.to(x.dtype).reshape(b, ci * _TAPS, h * w)


def deform_modconv(x: Tensor, weight: Tensor, offset: Tensor, mask: Tensor | None = None,
                   style: Tensor | None = None, demodulate: bool = True, eps: float = 1e-8) -> Tensor:
    """The MTM operator: d[b, o] * DCN(x * s; W), a deformable, modulated 3x3 convolution.

    Stride 1, padding 1, dilation 1; tap (ky, kx) of output pixel (h, w) samples
    y = h - 1 + ky + offset[:, 2k], x = w - 1 + kx + offset[:, 2k + 1] (k = ky * 3 + kx)
    bilinearly, each corner outside the map contributing 0: torchvision.ops.deform_conv2d
    semantics (DCNv1; DCNv2 with `mask` [B, 9, H, W] scaling each tap's sample).
    Modulation and demodulation are exactly those of `modulated_conv2d`; d does not depend
    on the offsets.
    """
    _check_deform(x, weight, offset, mask)
    _check_style(style, x)
    b, _, h, w = x.shape
    cols = _deform_columns(_modulate(x, style), offset, mask)
    # Sizes spelled out, not -1: an empty batch has no size to infer (kernels.dispatch sends empty
    # tensors here, and modulated_conv2d takes them).
    y = torch.matmul(weight.reshape(weight.shape[0], -1), cols).reshape(b, weight.shape[0], h, w)
    if demodulate:
        y = y * _demodulation(weight, style, eps, padding=1)
    return y
