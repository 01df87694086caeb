"""StyleGAN2 residual discriminator that exposes its 16/8/4 features for GradCAM.

Training aligns D's attention at these levels with G's input heatmaps (SpatialGAN), so
the forward pass can return the feature maps it computed along the way.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.config import default_channels
from models.nets.layers import EqualConv2d, EqualLinear

GRADCAM_LEVELS = (16, 8, 4)


def group_std(x: torch.Tensor, group: int) -> torch.Tensor:
    """[B, ...] -> [B / g, ...]: the standard deviation across each group of g samples (g the
    largest divisor of B up to `group`; image i goes with i + B/g, i + 2B/g...)."""
    g = min(group, x.shape[0])
    while x.shape[0] % g:
        g -= 1
    y = x.reshape(g, -1, *x.shape[1:])
    return (y - y.mean(0)).square().mean(0).add(1e-8).sqrt()


def minibatch_std(x: torch.Tensor, group: int) -> torch.Tensor:
    """Append the standard deviation across groups of samples as one more channel, so D can
    see a lack of variety (StyleGAN's minibatch-std layer)."""
    B, C, H, W = x.shape
    y = group_std(x, group).mean(dim=(1, 2, 3))
    return torch.cat([x, y.view(-1, 1, 1, 1).repeat(B // y.shape[0], 1, H, W)], dim=1)


def build_trunk(resolution: int, c: dict[int, int], in_channels: int) -> tuple[nn.Module, nn.ModuleDict]:
    """fromRGB and the residual blocks down to 4x4: the part the image and video D share."""
    from_rgb = EqualConv2d(in_channels, c[resolution], 1)
    blocks = nn.ModuleDict()
    r = resolution
    while r > 4:
        blocks[str(r)] = DownBlock(c[r], c[r // 2])
        r //= 2
    return from_rgb, blocks


class DownBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv0 = EqualConv2d(cin, cin, 3)
        self.conv1 = EqualConv2d(cin, cout, 3)
        self.skip = EqualConv2d(cin, cout, 1, bias=False, activate=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(F.avg_pool2d(self.conv0(x), 2))
        return (y + self.skip(F.avg_pool2d(x, 2))) / math.sqrt(2)


class Discriminator(nn.Module):
    def __init__(self, resolution: int, channels: dict[int, int] | None = None, mbstd_group: int = 4,
                 in_channels: int = 3):
        super().__init__()
        c = {int(k): v for k, v in (channels or default_channels(resolution)).items()}
        self.resolution = resolution
        self.mbstd_group = mbstd_group
        self.from_rgb, self.blocks = build_trunk(resolution, c, in_channels)
        self.final_conv = EqualConv2d(c[4] + 1, c[4], 3)
        self.fc = EqualLinear(c[4] * 16, c[4], activate=True)
        self.out = EqualLinear(c[4], 1)

    def minibatch_std(self, x: torch.Tensor) -> torch.Tensor:
        return minibatch_std(x, self.mbstd_group)

    def forward(self, img: torch.Tensor, return_features: bool = False):
        x = self.from_rgb(img)
        feats: dict[int, torch.Tensor] = {self.resolution: x} if self.resolution in GRADCAM_LEVELS[:2] else {}
        for r_str, block in self.blocks.items():
            x = block(x)
            r = int(r_str) // 2
            if r in GRADCAM_LEVELS[:2]:
                feats[r] = x
        x = self.final_conv(self.minibatch_std(x))
        feats[4] = x
        logits = self.out(self.fc(x.flatten(1)))
        return (logits, feats) if return_features else logits
