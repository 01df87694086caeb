"""Vectorised 2-D drawing: signed distances, soft coverage, compositing.

Everything works on whole batches at once: a shape parameter of shape [B] is viewed as
[B, 1, 1, 1] against pixel grids of shape [1, 1, S, S]. Distances are in normalised image
units (negative inside), so the same scene renders at any resolution.
"""
from __future__ import annotations

import math

import torch


def pixel_grid(size: int, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates x [1, 1, 1, S] and y [1, 1, S, 1], as in models/nets/heatmaps.py."""
    c = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size
    return c.view(1, 1, 1, size), c.view(1, 1, size, 1)


def col(v: torch.Tensor) -> torch.Tensor:
    """[B] -> [B, 1, 1, 1]; [B, 3] -> [B, 3, 1, 1]: broadcast per-sample values over pixels."""
    return v.view(v.shape[0], -1, 1, 1)


def coverage(sdf: torch.Tensor, size: int) -> torch.Tensor:
    """Antialiased inside-ness: a smooth step of the signed distance over about one pixel.
    Continuous in the shape's parameters, so sub-pixel moves change the image a little."""
    a = (0.5 - sdf * size).clamp(0.0, 1.0)
    return a * a * (3.0 - 2.0 * a)


def soft_square(s: torch.Tensor, sharpness: float = 4.0) -> torch.Tensor:
    """A square wave in [0, 1] from a sine, with soft transitions (stripes without aliasing)."""
    return (torch.sin(s) * sharpness).clamp(-1.0, 1.0) * 0.5 + 0.5


def rotate(dx: torch.Tensor, dy: torch.Tensor, angle: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Image offsets into a frame rotated by `angle` (radians, [B, 1, 1, 1])."""
    c, s = torch.cos(angle), torch.sin(angle)
    return c * dx + s * dy, -s * dx + c * dy


def box_sdf(u: torch.Tensor, v: torch.Tensor, hw: torch.Tensor, hh: torch.Tensor,
            radius: torch.Tensor | float = 0.0, taper: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Rounded box centred at the origin. `taper` widens the box downwards: the half width at
    height v is hw * (1 + taper * v / hh), which makes trapezoids (lamp shades, pots)."""
    hw = (hw * (1.0 + taper * (v / hh.clamp_min(1e-6)).clamp(-1.0, 1.0))).clamp_min(0.0)
    r = torch.minimum(torch.as_tensor(radius, device=u.device), torch.minimum(hw, hh))
    qx = u.abs() - hw + r
    qy = v.abs() - hh + r
    outside = torch.sqrt(qx.clamp_min(0.0) ** 2 + qy.clamp_min(0.0) ** 2)
    return outside + torch.maximum(qx, qy).clamp_max(0.0) - r


def ellipse_sdf(u: torch.Tensor, v: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Approximate distance to an axis-aligned ellipse (exact near the boundary, which is all
    the soft edge needs): f / |grad f| with f = |p / r| - 1."""
    a, b = a.clamp_min(1e-6), b.clamp_min(1e-6)
    k0 = torch.sqrt((u / a) ** 2 + (v / b) ** 2)
    k1 = torch.sqrt((u / (a * a)) ** 2 + (v / (b * b)) ** 2)
    inner = -torch.minimum(a, b).expand_as(k0)
    return torch.where(k1 > 1e-6, k0 * (k0 - 1.0) / k1.clamp_min(1e-6), inner)


def capsule_sdf(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                radius: torch.Tensor) -> torch.Tensor:
    """Segment a -> b ([B, 2] each) thickened by radius ([B]): a limb or a torso."""
    ax, ay = col(a[:, 0]), col(a[:, 1])
    bx, by = col(b[:, 0]), col(b[:, 1])
    px, py = x - ax, y - ay
    ex, ey = bx - ax, by - ay
    h = ((px * ex + py * ey) / (ex * ex + ey * ey).clamp_min(1e-10)).clamp(0.0, 1.0)
    return torch.sqrt((px - ex * h) ** 2 + (py - ey * h) ** 2) - col(radius)


def over(image: torch.Tensor, colour: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Paint `colour` ([B, 3, 1, 1] or [B, 3, S, S]) over `image` with coverage alpha [B, 1, S, S]."""
    return image + alpha * (colour - image)


def union(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Coverage of two overlapping parts of one object."""
    return a + b - a * b


def hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """[...] hue in [0, 1), saturation, value -> [..., 3] RGB in [0, 1]. Sampling colours in
    HSV gives control over how muted or vivid a palette is (walls muted, toys vivid)."""
    k = torch.stack([(5.0 + h * 6.0) % 6.0, (3.0 + h * 6.0) % 6.0, (1.0 + h * 6.0) % 6.0], dim=-1)
    f = (torch.minimum(k, 4.0 - k)).clamp(0.0, 1.0)
    return v[..., None] - v[..., None] * s[..., None] * f


TWO_PI = 2.0 * math.pi
