"""The time capability (StyleGAN-V): motion codes on a time grid, smoothed, turned into an
acyclic positional time embedding, fed to the synthesis network as extra input channels.

- Motion codes sit on a grid, one every `motion_every` frames at `base_fps` (`step`
  seconds apart). Code k is drawn from a generator seeded by (motion_seed, k), so the
  frame at time t needs only the few codes around t: a video is unbounded in length, and
  a frame never depends on the frame rate or on which other frames were rendered.
- Smoothing: a 1D convolution (kernel K) over neighbouring codes, written as one linear
  layer on the K codes flattened, gives a smoothed code u_k that shares K - 1 of its
  inputs with u_(k+1), so motion changes gradually. Between grid points u is linearly
  interpolated (u_k -> u_(k+1) as t goes from k to k + 1 steps).
- Acyclic embedding: sinusoids a * sin(w * tau + phi) whose amplitudes, periods and phases
  are predicted from u_k, minus their own linear interpolation between the two grid
  points, so the wave term is zero on every grid point (continuous across intervals) and
  never repeats, since a, w, phi change every interval. tau is the time since the left
  grid point: only the fraction alpha of the step enters the network, which keeps float32
  exact however large t is.

A frame's motion input is therefore (codes k - K//2 .. k + 1 + K//2, alpha): `Latents.
motion_codes` [B, K + 1, motion_dim] and `Latents.motion_alpha` [B].
"""
from __future__ import annotations

import hashlib
import math
from functools import lru_cache
from typing import Any

import torch
from torch import nn

from models.config import GeneratorConfig
from models.document.scene import SEED_LIMIT
from models.nets.layers import EqualLinear

SHORTEST_PERIOD, LONGEST_PERIOD = 0.25, 8.0  # base periods of the waves, in grid steps


def time_settings(config: GeneratorConfig) -> dict[str, Any]:
    """The config's time settings; a generator without the time capability has none."""
    if config.time is None:
        raise ValueError("this generator has no time capability (its config has no 'time' settings)")
    return config.time


def grid_step(config: GeneratorConfig) -> float:
    """Seconds between two motion codes."""
    return time_settings(config)["motion_every"] / time_settings(config)["base_fps"]


def window_size(config: GeneratorConfig) -> int:
    """Codes a frame needs: K for u_k and K for u_(k+1), K - 1 of them shared."""
    return time_settings(config)["kernel"] + 1


def motion_code_seed(motion_seed: int, k: int) -> int:
    """The seed of grid code k: a hash (the same on every machine) of (motion_seed, k)."""
    digest = hashlib.blake2b(f"{motion_seed}:{k}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % SEED_LIMIT


@lru_cache(maxsize=1024)  # playback asks for the same few codes frame after frame
def _code(motion_seed: int, k: int, dim: int) -> torch.Tensor:
    return torch.randn(dim, generator=torch.Generator().manual_seed(motion_code_seed(motion_seed, k)))


def grid_position(config: GeneratorConfig, t: float) -> tuple[int, float]:
    """(k, alpha): t lies alpha of the way from grid point k to k + 1 (Python floats: exact
    enough for any t a scene allows)."""
    pos = float(t) / grid_step(config)
    k = math.floor(pos)
    return k, min(max(pos - k, 0.0), 1.0)


def seeded_motion(config: GeneratorConfig, motion_seed: int, t: float) -> tuple[torch.Tensor, float]:
    """The motion input of the frame at t: (codes [K + 1, motion_dim], alpha)."""
    k, alpha = grid_position(config, t)
    r = time_settings(config)["kernel"] // 2
    dim = time_settings(config)["motion_dim"]
    codes = torch.stack([_code(motion_seed, j, dim) for j in range(k - r, k + 2 + r)])
    return codes, alpha


def random_motion(config: GeneratorConfig, batch: int,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Motion inputs of single random frames: fresh codes and a uniform alpha. Codes are
    i.i.d. normal, so this is how any frame of any seeded video is distributed."""
    codes = torch.randn(batch, window_size(config), time_settings(config)["motion_dim"], generator=generator)
    return codes, torch.rand(batch, generator=generator)


def clip_motion(config: GeneratorConfig, times: torch.Tensor,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Motion inputs of T frames of each of B clips at `times` [B, T] (seconds, >= 0): one
    code sequence per clip, each frame its window of it. -> ([B*T, K + 1, m], [B*T])."""
    B, T = times.shape
    pos = times.detach().double().cpu() / grid_step(config)
    k = pos.floor().long()  # [B, T] grid index of each frame
    alpha = (pos - k).float().clamp(0, 1)
    W = window_size(config)
    length = int(k.max()) + W  # sequence index i holds grid code i - K//2
    codes = torch.randn(B, length, time_settings(config)["motion_dim"], generator=generator)
    idx = k.reshape(B * T, 1) + torch.arange(W)  # [B*T, W] into the clip's sequence
    clip = torch.arange(B).repeat_interleave(T)
    return codes[clip[:, None], idx], alpha.reshape(B * T)


class MotionEncoder(nn.Module):
    """(codes [B, K + 1, m], alpha [B]) -> time features [B, channels] (see the module doc)."""

    base_omega: torch.Tensor  # a buffer: declared for the type checker

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        t = time_settings(config)
        self.kernel = t["kernel"]
        self.step = grid_step(config)
        self.smooth = EqualLinear(t["kernel"] * t["motion_dim"], t["hidden"], activate=True)
        self.amplitude = EqualLinear(t["hidden"], t["waves"])
        # Waves start silent (as MTM offsets start at zero): training begins from the smooth,
        # interpolated codes and learns the waves it needs, instead of from random flicker.
        nn.init.zeros_(self.amplitude.weight)
        self.frequency = EqualLinear(t["hidden"], t["waves"])  # log-scale around the base frequency
        self.phase = EqualLinear(t["hidden"], t["waves"])
        self.out = EqualLinear(t["hidden"] + t["waves"], t["channels"], activate=True)
        # Base periods spread geometrically over 1/4..8 grid steps: fast wiggles to slow drifts.
        # Derived from the config, never stored: a checkpoint holds only learned weights.
        periods = self.step * torch.logspace(math.log10(SHORTEST_PERIOD), math.log10(LONGEST_PERIOD), t["waves"])
        self.register_buffer("base_omega", 2 * math.pi / periods, persistent=False)

    def forward(self, codes: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        # float32 whatever the autocast: in bf16 a phase w * tau + phi is off by tenths of a
        # radian, and these layers are too small for the cast to save anything.
        with torch.autocast(codes.device.type, enabled=False):
            codes = codes.float()
            # Unit-RMS codes, as the mapping network does with z.
            codes = codes * torch.rsqrt(codes.square().mean(dim=-1, keepdim=True) + 1e-8)
            left = self.smooth(codes[:, :self.kernel].flatten(1))
            right = self.smooth(codes[:, 1:].flatten(1))
            a = alpha.float()[:, None]
            tau = a * self.step
            amp = self.amplitude(left)
            omega = self.base_omega * torch.exp(torch.tanh(self.frequency(left)))  # within e^-1..e of the base
            phi = self.phase(left)
            trend = torch.lerp(torch.sin(phi), torch.sin(omega * self.step + phi), a)  # the wave's chord
            wave = amp * (torch.sin(omega * tau + phi) - trend)
            return self.out(torch.cat([torch.lerp(left, right, a), wave], dim=1))
