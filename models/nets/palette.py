"""Object palettes: inside an object, the finest level paints with a few colours of the
object's own (GeneratorConfig.object_palette).

Why: a real room's objects are one flat colour, or two mixed in stripes or checks, plus an
accent (frames, wood, leaves), all under the room's light; in 4x4 patches their colours
lie on one line through colour space (README, the fifteenth comparison: the off-line
statistic 0.003 on real rooms). rooms-cpu draws its objects almost entirely at the 64 px
level (session 20's level sheet), whose ToRGB can put any hue at any pixel, and fills them
with hue that changes from pixel to pixel (0.03). Neither a wider level nor a loss on the
statistic changed what a person sees.

Here each object's style gives k colours; at each pixel the features choose a mix of them
(softmax: a point in their convex hull, a line for two), a brightness (the light), and how
much of the picture there is painted this way (a gate). The objects' Gaussians say whose
colours a pixel takes. One scalar strength, starting at zero, scales the painting in: a
generator grown with palettes draws exactly what it drew before (warm start from a state
without them, training.gpu_worker.GROWN_PREFIXES), and the D's gradient decides how far
it goes.

Tried (README, the twenty-first comparison): from the shipped rooms-cpu state the D opened
the palettes steadily (strength 0.62 after 16k images), but realism was worse than the
control's and the rainbow fills stayed: not adopted.
"""
from __future__ import annotations

import torch
from torch import nn

from models.nets.layers import EqualLinear


class ObjectPalette(nn.Module):
    def __init__(self, w_dim: int, channels: int, colours: int):
        super().__init__()
        self.colours = colours
        # Each object's colours from its style (random at first, so that different objects
        # start with different colours; nothing is painted until `strength` grows).
        self.palette = EqualLinear(w_dim, colours * 3)
        # Per pixel, from the finest features: the mix of the colours, a brightness, a gate.
        self.choose = nn.Conv2d(channels, colours + 2, 1)
        self.strength = nn.Parameter(torch.zeros(()))

    def object_colours(self, w_objects: torch.Tensor) -> torch.Tensor:
        """[B, n, colours, 3] in [-1, 1], the image's range."""
        B, n, _ = w_objects.shape
        return torch.tanh(self.palette(w_objects.float())).view(B, n, self.colours, 3)

    def forward(self, rgb: torch.Tensor, x: torch.Tensor, w_objects: torch.Tensor,
                heat: torch.Tensor) -> torch.Tensor:
        """rgb [B, 3, S, S] (the finished image); x [B, C, S, S] (the finest features);
        w_objects [B, n, w]; heat [B, n, S, S] (the objects' Gaussians; an absent object's
        is zero and paints nothing) -> rgb with the objects painted from their palettes."""
        k = self.colours
        out = self.choose(x.float())
        mix = out[:, :k].softmax(dim=1)  # [B, k, S, S]
        # brightness about 1: the light over a flat colour (bounded so that it cannot blow up)
        light = torch.exp(torch.tanh(out[:, k:k + 1]))
        gate = torch.sigmoid(out[:, k + 1:k + 2])
        heat = heat.float()
        total = heat.sum(dim=1, keepdim=True)
        whose = heat / total.clamp_min(1e-6)  # which object's colours, where Gaussians overlap
        painted = torch.einsum("bnhw,bkhw,bnkc->bchw", whose, mix, self.object_colours(w_objects)) * light
        amount = self.strength * gate * total.clamp(max=1.0)
        return rgb + (amount * (painted - rgb.float())).to(rgb.dtype)

    def extra_repr(self) -> str:
        return f"colours={self.colours}"
