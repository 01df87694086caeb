"""The few small layers the generator and discriminator are built from.

Equalised learning rate throughout (weights stored at unit variance, scaled at run time),
as in StyleGAN2. Styles may be global ([B, C]) or spatial fields ([B, C, H, W]); the
spatially modulated convolution handles both, so per-object styles, block grids and
plain global styles are one code path.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from kernels import deform_modconv, modulated_conv2d, smooth_demod_taps, smooth_demodulation

SQRT2 = math.sqrt(2.0)
# Where the per-pixel noise comes from: fresh each call (training), fixed per layer
# (rendering: the same state gives the same pixels), or none.
NOISE_MODES = ("random", "const", "none")


def check_noise_mode(noise_mode: str) -> None:
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"noise_mode must be one of {', '.join(NOISE_MODES)}; got {noise_mode!r}")


def lrelu(x: torch.Tensor) -> torch.Tensor:
    # Gain sqrt(2) keeps activations at unit variance through the leaky ReLU.
    return F.leaky_relu(x, 0.2) * SQRT2


@lru_cache(maxsize=64)
def _bilinear_matrix(n_in: int, n_out: int, dtype: torch.dtype) -> torch.Tensor:
    """[n_out, n_in]: 1-D bilinear resampling with F.interpolate's align_corners=False rule
    (source = (i + 0.5) * n_in / n_out - 0.5, clamped to the edge pixels).
    Cached for the process, so never made an inference tensor: one made under
    torch.inference_mode cannot be saved for backward, and every later gradient through a
    resize of these sizes would fail."""
    with torch.inference_mode(False), torch.no_grad():
        dst = torch.arange(n_out, dtype=torch.float64)
        src = ((dst + 0.5) * (n_in / n_out) - 0.5).clamp(min=0)
        lo = src.floor().long().clamp(max=n_in - 1)
        hi = (lo + 1).clamp(max=n_in - 1)
        frac = src - lo
        rows = torch.arange(n_out)
        matrix = torch.zeros(n_out, n_in, dtype=torch.float64)
        matrix[rows, lo] += 1 - frac
        matrix[rows, hi] += frac
        return matrix.to(dtype)


def bilinear_resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """F.interpolate(x, (size, size), mode="bilinear", align_corners=False), [B, C, H, W].

    On the CPU as two small matrix products (rows, then columns): PyTorch's CPU bilinear
    kernel was 2-7x slower for the generator's shapes (1.8-2.4 ms against 0.4 ms for 64
    channels 32 -> 64 px, one thread) and ran ~16 times a frame. Equal to F.interpolate up
    to float rounding (tested). Elsewhere, and under autocast, F.interpolate itself, so GPU
    training keeps its numerics.
    """
    if x.shape[-2] == size and x.shape[-1] == size:
        return x
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64) or torch.is_autocast_enabled("cpu"):
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    rows = _bilinear_matrix(x.shape[-2], size, x.dtype)
    cols = _bilinear_matrix(x.shape[-1], size, x.dtype)
    return torch.matmul(torch.matmul(rows, x), cols.t())


def resize_field(field: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of a spatial field; a global ([B, C]) style passes through."""
    if field.dim() == 2:
        return field
    return bilinear_resize(field, size)


class EqualLinear(nn.Module):
    def __init__(self, cin: int, cout: int, bias_init: float = 0.0, lr_mul: float = 1.0, activate: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin) / lr_mul)
        self.bias = nn.Parameter(torch.full((cout,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(cin)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return lrelu(y) if self.activate else y

    # The sizes are read off the weights (not stored twice), so a repr never disagrees with them.
    def extra_repr(self) -> str:
        cout, cin = self.weight.shape
        return f"in={cin}, out={cout}, lr_mul={self.lr_mul:g}, activate={self.activate}"


class StyleAffine(EqualLinear):
    """w -> per-channel style s. Applied pointwise, so it works on w vectors and w fields alike."""

    def __init__(self, w_dim: int, channels: int):
        super().__init__(w_dim, channels, bias_init=1.0)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if w.dim() == 2:
            return super().forward(w)
        return F.conv2d(w, (self.weight * self.scale)[:, :, None, None], self.bias)

    def extra_repr(self) -> str:
        channels, w_dim = self.weight.shape
        return f"w_dim={w_dim}, channels={channels}"


class MappingNetwork(nn.Module):
    """z -> w. Shared by the global style, every object style and every grid block."""

    w_avg: torch.Tensor  # a buffer: declared for the type checker

    def __init__(self, z_dim: int, w_dim: int, layers: int, lr_mul: float = 0.01):
        super().__init__()
        dims = [z_dim] + [w_dim] * layers
        self.net = nn.Sequential(*[EqualLinear(a, b, lr_mul=lr_mul, activate=True) for a, b in zip(dims, dims[1:])])
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = z * torch.rsqrt(z.square().mean(dim=-1, keepdim=True) + 1e-8)
        return self.net(z)

    def extra_repr(self) -> str:
        layers = [layer for layer in self.net.children() if isinstance(layer, EqualLinear)]
        return f"z_dim={layers[0].weight.shape[1]}, w_dim={layers[-1].weight.shape[0]}, layers={len(layers)}"

    def truncate(self, w: torch.Tensor, psi: float | torch.Tensor) -> torch.Tensor:
        """Pull w towards the average w (psi = 1: unchanged); works on [..., w_dim] and fields [B, w_dim, H, W]."""
        if not isinstance(psi, torch.Tensor) and psi == 1.0:  # a tensor psi: the traced renderer
            return w
        avg = self.w_avg.view(-1, 1, 1) if w.dim() == 4 else self.w_avg
        return avg + psi * (w - avg)


def tensor_version(t: torch.Tensor) -> int | None:
    """The tensor's in-place edit counter; None for an inference tensor, which has none
    (and cannot be edited in place outside inference mode)."""
    return None if t.is_inference() else t._version


# Previews demodulate with the smooth approximation from this resolution up. Below it a style
# field's blocks and heatmaps span only a few pixels (the 4x4 grid is one block a pixel at
# 4 px), so the exact demodulation stays; it is also where it costs least.
SMOOTH_DEMOD_MIN = 16


class StyledConv(nn.Module):
    """Spatially modulated 3x3 convolution (+ optional MTM offsets), noise, bias, lrelu.

    Demodulation uses expected statistics (SSN): d = rsqrt(conv(s^2, W^2) + eps) for a
    spatial style, which the kernels compute. With `mtm`, a second modulated convolution
    predicts 18 offset channels from the same input and the style; it starts at zero so
    training starts from a plain convolution, and `offset_scale` (0 = off, 1 = as trained)
    scales it at run time without retraining.
    """

    noise_const: torch.Tensor  # a buffer: declared for the type checker

    def __init__(self, cin: int, cout: int, w_dim: int, resolution: int, upsample: bool = False,
                 mtm: bool = False, noise: bool = True, noise_seed: int = 0, name: str = ""):
        super().__init__()
        self.name = name  # "8.0": resolution 8, first conv; names the offset field in the studio
        self.upsample = upsample
        self.resolution = resolution
        self.affine = StyleAffine(w_dim, cin)
        self.weight = nn.Parameter(torch.randn(cout, cin, 3, 3))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.wscale = 1.0 / math.sqrt(cin * 9)
        self.mtm = mtm
        if mtm:
            self.offset_affine = StyleAffine(w_dim, cin)
            self.offset_weight = nn.Parameter(torch.zeros(18, cin, 3, 3))
            self.offset_bias = nn.Parameter(torch.zeros(18))
            # The offset field ([B, 18, H, W], after offset_scale) passes through here: a
            # forward hook on it reads the field (the studio's overlay; models/render.py)
            # with no bookkeeping in the network. No parameters, so checkpoints are unchanged.
            self.offset_tap = nn.Identity()
        self.use_noise = noise
        if noise:
            self.noise_strength = nn.Parameter(torch.zeros([]))
            # Fixed noise for the deterministic mode: regenerated from a seed, never stored.
            g = torch.Generator().manual_seed(1000 + noise_seed)
            self.register_buffer("noise_const", torch.randn(1, 1, resolution, resolution, generator=g),
                                 persistent=False)

    def forward(self, x: torch.Tensor, w_field: torch.Tensor, offset_scale: float | torch.Tensor,
                noise_mode: str, smooth_demod: bool = False) -> torch.Tensor:
        """`smooth_demod`: a preview's cheaper demodulation (kernels.smooth_demodulation) at
        resolutions of at least SMOOTH_DEMOD_MIN, where the style field is smooth."""
        if self.upsample:
            x = bilinear_resize(x, x.shape[-1] * 2)
        size = x.shape[-1]
        style = resize_field(self.affine(w_field), size)
        weight = self.weight * self.wscale
        smooth = smooth_demod and size >= SMOOTH_DEMOD_MIN and style.dim() == 4
        if self.mtm:
            offset_style = resize_field(self.offset_affine(w_field), size)
            offset = modulated_conv2d(x, self.offset_weight * self.wscale, offset_style, demodulate=False)
            offset = self.offset_tap((offset + self.offset_bias.view(1, -1, 1, 1)) * offset_scale)
            y = deform_modconv(x, weight, offset, style=style, demodulate=not smooth)
        else:
            y = modulated_conv2d(x, weight, style, demodulate=not smooth)
        if smooth:
            y = y * smooth_demodulation(style, self._smooth_taps())
        check_noise_mode(noise_mode)
        if self.use_noise and noise_mode != "none":
            if noise_mode == "random":
                noise = torch.randn(y.shape[0], 1, size, size, device=y.device, dtype=y.dtype)
            else:
                noise = self.noise_const.to(y.dtype)
            y = y + noise * self.noise_strength
        return lrelu(y + self.bias.view(1, -1, 1, 1))

    def _smooth_taps(self) -> torch.Tensor:
        """smooth_demod_taps of the scaled weight, kept while the weight is unchanged: it
        costs 1-2 ms a layer on the CPU (reductions over 3x3 taps), as much as the rest of
        the smooth demodulation. "Unchanged": the same parameter tensor at the same version
        (a load_state_dict or an optimiser step changes one of them; an edit through
        `.data` changes neither, and needs a new generator). `.to()` moves a parameter in
        place without either (the studio moves its model to the CPU when the GPU runs out of
        memory), so the taps must also be on the weight's device, in its dtype. With gradients
        wanted, computed live so they flow. Never an inference tensor (one computed under
        torch.inference_mode could not be used by a later gradient, through the latents when
        fitting). A trace built after a preview holds it as a constant; the trace is dropped
        when the weights change (models/synthesis.py)."""
        weight = self.weight
        if torch.is_grad_enabled() and weight.requires_grad:
            return smooth_demod_taps(weight * self.wscale)
        version = tensor_version(weight)
        cached = self.__dict__.get("_smooth_taps_cache")
        if (cached is None or cached[0] is not weight or cached[1] != version
                or cached[2].device != weight.device or cached[2].dtype != weight.dtype):
            with torch.inference_mode(False), torch.no_grad():
                cached = (weight, version, smooth_demod_taps(weight.detach() * self.wscale))
            self.__dict__["_smooth_taps_cache"] = cached
        return cached[2]

    def extra_repr(self) -> str:
        cout, cin = self.weight.shape[:2]
        return (f"name={self.name!r}, cin={cin}, cout={cout}, resolution={self.resolution},"
                f" upsample={self.upsample}, mtm={self.mtm}, noise={self.use_noise}")


class ToRGB(nn.Module):
    """Modulated 1x1 convolution to RGB, no demodulation (StyleGAN2 skip outputs)."""

    def __init__(self, cin: int, w_dim: int):
        super().__init__()
        self.affine = StyleAffine(w_dim, cin)
        self.weight = nn.Parameter(torch.randn(3, cin, 1, 1))
        self.bias = nn.Parameter(torch.zeros(3))
        self.wscale = 1.0 / math.sqrt(cin)

    def forward(self, x: torch.Tensor, w_field: torch.Tensor) -> torch.Tensor:
        style = resize_field(self.affine(w_field), x.shape[-1])
        y = modulated_conv2d(x, self.weight * self.wscale, style, demodulate=False, padding=0)
        return y + self.bias.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"cin={self.weight.shape[1]}, cout=3"


class EqualConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, bias: bool = True, activate: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.scale = 1.0 / math.sqrt(cin * kernel * kernel)
        self.padding = kernel // 2
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)
        return lrelu(y) if self.activate else y

    def extra_repr(self) -> str:
        cout, cin, kernel = self.weight.shape[:3]
        return f"cin={cin}, cout={cout}, kernel={kernel}, bias={self.bias is not None}, activate={self.activate}"
