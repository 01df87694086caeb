"""Object sprites: features drawn in each object's own coordinates (GeneratorConfig.object_sprites).

Without them an object is a Gaussian bump in the style field and the heat bias: radially
symmetric, so its silhouette and texture come from the features already at that place of
the picture (the constant and the coarse layers, which do not move with the handle). A
moved object is then redrawn from other features and looks different at its new place
(session 15: the moved object's patch matches at its new place with a residual of 1.04 of
its own variance, the renderer's 0.26).

A sprite is a sum of fixed basis functions of the object's local coordinates
u = (x - cx) / sigma, v = (y - cy) / sigma (waves under the object's Gaussian), with
coefficients per channel read off the object's style. It moves and scales exactly with
the handle. Where the object is, the features beneath fade by a learned gate per channel,
so what is drawn there depends less on the place. Weights and gate start at zero: a
generator grown with sprites draws exactly what it drew before (warm start from a state
without them, training.gpu_worker).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from models.nets.heatmaps import MIN_SIGMA
from models.nets.layers import EqualLinear


def basis_waves(count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed frequencies [count, 2] (radians per sigma) and phases [count] of the basis: the
    first is the Gaussian itself (frequency 0); the rest spread over directions by the golden
    angle and over 0.5..3 radians per sigma (an object spans about 4 sigma: a few
    oscillations at most), each as a cosine and a sine."""
    freqs, phases = [torch.zeros(2)], [0.0]
    golden = math.pi * (3 - math.sqrt(5))
    i = 0
    while len(freqs) < count:
        magnitude = 0.5 + 2.5 * ((i * 0.618034) % 1.0)
        direction = torch.tensor([math.cos(i * golden), math.sin(i * golden)])
        for phase in (0.0, -math.pi / 2):
            if len(freqs) < count:
                freqs.append(magnitude * direction)
                phases.append(phase)
        i += 1
    return torch.stack(freqs), torch.tensor(phases)


class ObjectSprites(nn.Module):
    freqs: torch.Tensor  # [basis, 2] (buffers, typed for mypy)
    phases: torch.Tensor  # [basis]

    def __init__(self, w_dim: int, channels: int, basis: int):
        super().__init__()
        self.channels, self.basis = channels, basis
        self.coeffs = EqualLinear(w_dim, channels * basis)
        nn.init.zeros_(self.coeffs.weight)  # (the bias starts at zero too)
        self.gate = nn.Parameter(torch.zeros(channels))
        freqs, phases = basis_waves(basis)
        # fixed by construction, not learned: kept out of the state dict
        self.register_buffer("freqs", freqs, persistent=False)
        self.register_buffer("phases", phases, persistent=False)

    def forward(self, x: torch.Tensor, w_objects: torch.Tensor, centers: torch.Tensor,
                sigmas: torch.Tensor) -> torch.Tensor:
        """x [B, C, S, S]; w_objects [B, n, w]; centers [B, n, 2]; sigmas [B, n] (an absent
        object, sigma 0, draws nothing) -> x with the sprites drawn in."""
        B, n = sigmas.shape
        S = x.shape[-1]
        coords = (torch.arange(S, device=x.device, dtype=torch.float32) + 0.5) / S
        s = sigmas.float().clamp_min(MIN_SIGMA)[..., None, None]
        u = (coords.view(1, 1, 1, S) - centers[..., 0, None, None].float()) / s  # [B, n, 1, S]
        v = (coords.view(1, 1, S, 1) - centers[..., 1, None, None].float()) / s  # [B, n, S, 1]
        envelope = torch.exp(-(u * u + v * v) / 2) * (sigmas > MIN_SIGMA).float()[..., None, None]  # [B, n, S, S]
        angle = (self.freqs[:, 0].view(1, 1, -1, 1, 1) * u[:, :, None] + self.freqs[:, 1].view(1, 1, -1, 1, 1)
                 * v[:, :, None] + self.phases.view(1, 1, -1, 1, 1))  # [B, n, K, S, S]
        basis = torch.cos(angle) * envelope[:, :, None]
        coeffs = self.coeffs(w_objects.float()).view(B, n, self.channels, self.basis)
        sprite = torch.einsum("bnck,bnkhw->bchw", coeffs, basis)
        cover = envelope.sum(dim=1, keepdim=True).clamp(max=1.0)
        return x - (self.gate.view(1, -1, 1, 1) * cover * x).to(x.dtype) + sprite.to(x.dtype)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, basis={self.basis}"
