"""Widening a trained generator's finest level without changing what it draws.

Session 20 looked at where rooms-cpu draws its objects: the skip architecture's image at 32
px holds walls and floor but hardly a trace of the furniture; the 64 px level, 24 channels
wide, draws each object almost from nothing in two convolutions, and its fills are the
rainbow speckle a person cannot name (models/tools/level_sheet.py; README, the eighteenth
comparison, which found the wider level no cure for the fills). A wider finest
level is the direct test of whether that width is the limit. Training a wider generator
from scratch would throw away 350k images of training, so the trained state grows instead
(the Net2Net idea: Chen et al. 2016, a function-preserving widening):

- the new output channels of the level's first convolution start from the wider network's
  fresh initialisation (demodulated, so they carry unit-scale features at once);
- every weight that reads the new channels into an old output (the second convolution's
  old outputs, its offset convolution, the RGB output) starts at zero, so the picture is
  unchanged; their gradients are not zero, so training opens them;
- the new channels' biases, heat bias, sprite coefficients and gates are zero (as the fresh
  network's are); the new channels' styles (affine rows) are the fresh ones;
- a weight whose fan-in grew keeps its function: equalised learning rate scales it by
  1/sqrt(fan-in) at run time, so its old part is multiplied by sqrt(new/old). (The
  demodulated convolutions would cancel it anyway; the RGB output and the offset convolution
  are not demodulated.)
"""
from __future__ import annotations

import dataclasses
import math

import torch

from models.config import GeneratorConfig

# Weights that read a level's channels into outputs that already existed: the grown part of
# their input dimension starts at zero (see the module docstring).
_READ_INTO_OLD = (".1.weight", ".1.offset_weight")


def widened_level(old: GeneratorConfig, new: GeneratorConfig) -> int | None:
    """The resolution whose channel count `new` raises, if `new` is `old` with only its finest
    level wider (a state of `old` then starts `new` drawing the same pictures); else None."""
    R = new.resolution
    if old.resolution != R or dataclasses.replace(old, channels=new.channels) != new:
        return None
    if any(old.channels[r] != new.channels[r] for r in new.resolutions() if r != R):
        return None
    return R if new.channels[R] > old.channels[R] else None


def widen_state(old: dict[str, torch.Tensor], fresh: dict[str, torch.Tensor],
                resolution: int) -> dict[str, torch.Tensor]:
    """A state dict for the wider generator whose freshly initialised state is `fresh`, drawing
    what the narrower generator with state `old` drew. Raises ValueError if the two differ in
    anything but the widened level's channels."""
    R = str(resolution)
    level = (f"convs.{R}.", f"torgbs.{R}.", f"heat_bias.{R}", f"sprites.{R}.")
    differ = sorted(set(fresh) ^ set(old))
    if differ:
        raise ValueError(f"the states differ in more than their {resolution} px level's width: {differ[:4]}")
    out: dict[str, torch.Tensor] = {}
    for name, new in fresh.items():
        before = old[name]
        if before.shape == new.shape:
            out[name] = before
            continue
        if not name.startswith(level) or before.dim() != new.dim() \
                or any(b > n for b, n in zip(before.shape, new.shape)):
            raise ValueError(f"{name}: {tuple(before.shape)} -> {tuple(new.shape)} is not a widening of the"
                             f" {resolution} px level")
        # the fresh network's values for the grown part: styles (affine rows, bias 1), new
        # output channels' weights, and zeros for biases, heat bias, sprite coefficients, gates
        grown = new.detach().clone()
        old_part = before.to(new.dtype)
        if before.dim() == 4 and new.shape[1] > before.shape[1]:  # a convolution whose fan-in grew
            old_part = old_part * math.sqrt(new.shape[1] / before.shape[1])
            if name.endswith(_READ_INTO_OLD) or name.startswith(f"torgbs.{R}."):
                grown[: before.shape[0], before.shape[1]:] = 0
        grown[tuple(slice(0, s) for s in before.shape)] = old_part
        out[name] = grown
    return out
