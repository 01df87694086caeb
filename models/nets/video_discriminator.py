"""StyleGAN-V's holistic video discriminator: it judges a sparse clip (a few frames at
real-valued times) as one sample.

Each frame goes through the same residual StyleGAN2 trunk down to 4x4; the per-frame
features are concatenated along channels with an encoding of the time differences between
consecutive frames (Fourier features of the gaps, tiled over 4x4), and one head judges the
whole. Knowing the gaps is what lets D tell plausible motion over 0.1 s from over 3 s.
The per-frame features at 16/8/4 are returned for SpatialGAN's GradCAM alignment, as the
image discriminator does.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from models.config import default_channels
from models.nets.discriminator import GRADCAM_LEVELS, build_trunk, minibatch_std
from models.nets.layers import EqualConv2d, EqualLinear

GAP_PERIODS = (0.1, 8.0)  # seconds: the shortest and longest periods of the gap encoding


class VideoDiscriminator(nn.Module):
    gap_omega: torch.Tensor  # a buffer: declared for the type checker

    def __init__(self, resolution: int, channels: dict[int, int] | None = None, frames: int = 3,
                 in_channels: int = 3, mbstd_group: int = 4, gap_features: int = 16, time_channels: int = 16):
        super().__init__()
        if frames < 2:
            raise ValueError(f"a video discriminator needs at least 2 frames per clip, got {frames}")
        c = {int(k): v for k, v in (channels or default_channels(resolution)).items()}
        self.resolution, self.frames, self.mbstd_group = resolution, frames, mbstd_group
        self.from_rgb, self.blocks = build_trunk(resolution, c, in_channels)
        periods = torch.logspace(math.log10(GAP_PERIODS[0]), math.log10(GAP_PERIODS[1]), gap_features)
        self.register_buffer("gap_omega", 2 * math.pi / periods, persistent=False)
        self.encode_gaps = EqualLinear(2 * gap_features * (frames - 1), time_channels, activate=True)
        self.final_conv = EqualConv2d(frames * c[4] + time_channels + 1, c[4], 3)
        self.fc = EqualLinear(c[4] * 16, c[4], activate=True)
        self.out = EqualLinear(c[4], 1)

    def encode_times(self, times: torch.Tensor) -> torch.Tensor:
        """times [B, T] -> [B, time_channels]: sin/cos features of the gaps between frames."""
        gaps = (times[:, 1:] - times[:, :-1]).float()[..., None] * self.gap_omega  # [B, T-1, F]
        return self.encode_gaps(torch.cat([gaps.sin(), gaps.cos()], dim=-1).flatten(1))

    def minibatch_std(self, x: torch.Tensor) -> torch.Tensor:
        return minibatch_std(x, self.mbstd_group)

    def forward(self, clips: torch.Tensor, times: torch.Tensor, return_features: bool = False):
        """clips [B, T, C, S, S] at times [B, T] (seconds) -> logits [B, 1] (and, with
        return_features, the per-frame features {16, 8, 4: [B*T, c, r, r]})."""
        B, T = clips.shape[:2]
        if T != self.frames or times.shape != (B, T):
            raise ValueError(f"expected {self.frames} frames per clip and times [B, {self.frames}],"
                             f" got clips {tuple(clips.shape)} and times {tuple(times.shape)}")
        x = self.from_rgb(clips.flatten(0, 1))
        feats: dict[int, torch.Tensor] = {self.resolution: x} if self.resolution in GRADCAM_LEVELS else {}
        for r_str, block in self.blocks.items():
            x = block(x)
            r = int(r_str) // 2
            if r in GRADCAM_LEVELS:
                feats[r] = x
        gaps = self.encode_times(times).to(x.dtype)[:, :, None, None].expand(-1, -1, 4, 4)
        x = torch.cat([x.unflatten(0, (B, T)).flatten(1, 2), gaps], dim=1)  # frames side by side
        x = self.final_conv(self.minibatch_std(x))
        logits = self.out(self.fc(x.flatten(1)))
        return (logits, feats) if return_features else logits


class ClipsProjectedDiscriminator(nn.Module):
    """The projected recipe for generators with time (issue 23: "adopt the winner ... clips
    included"): the projected D judges every frame as a still image (`frames`, with its
    per-pixel classes from each frame's rendered ground truth), and the holistic video D
    judges each clip's motion. The video D sits where a projected D keeps its pixel D
    (`pixel`): it is the StyleGAN2-type D beside the heads, weighed by `d_pixel` and
    regularised by R1, and a clips state of the StyleGAN2 recipe warm-starts it, as a still
    StyleGAN2 D becomes a projected recipe's pixel D (gpu_worker.WarmTrainer.warm_start)."""

    def __init__(self, frames: nn.Module, video: VideoDiscriminator):
        super().__init__()
        if getattr(frames, "pixel", None) is not None:
            raise ValueError("the frames' projected D must have no pixel D of its own: the video D is the clips'")
        self.frames = frames
        self.pixel = video

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Each part loads its own keys through its own load_state_dict: the projected D's
        restores its frozen backbone (saved states leave it out) and checks its digest, which
        a parent's load would bypass."""
        parts = {"frames": self.frames, "pixel": self.pixel}
        stray = [k for k in state_dict if k.split(".", 1)[0] not in parts]
        if strict and stray:
            raise RuntimeError(f"unexpected keys in a clips discriminator's state: {stray[:5]}")
        missing, unexpected = [], list(stray)
        for name, part in parts.items():
            own = {k[len(name) + 1:]: v for k, v in state_dict.items() if k.startswith(name + ".")}
            result = part.load_state_dict(own, strict=strict, assign=assign)
            missing += [f"{name}.{k}" for k in result.missing_keys]
            unexpected += [f"{name}.{k}" for k in result.unexpected_keys]
        return nn.modules.module._IncompatibleKeys(missing, unexpected)
