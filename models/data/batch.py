"""What the procedural renderers return, and the small tensor helpers they share.

Scene parameters are dataclasses of tensors with the batch as their first dimension, so
one set of helpers moves them between devices and repeats them per clip frame.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch


class TensorFields:
    """Mixin for dataclasses whose fields are tensors with the batch first (or None)."""

    # Set by @dataclass on the subclasses; declared so that dataclasses.fields(self) type-checks.
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    def _map(self, fn):
        return dataclasses.replace(self, **{f.name: fn(getattr(self, f.name)) for f in dataclasses.fields(self)
                                            if isinstance(getattr(self, f.name), torch.Tensor)})

    def to(self, device: torch.device | str):
        return self._map(lambda x: x.to(device))

    def repeat_each(self, times: int):
        """Each batch element `times` times in a row: [B, ...] -> [B * times, ...]."""
        return self._map(lambda x: x.repeat_interleave(times, dim=0))

    def rows(self, start: int, stop: int):
        """Batch elements start..stop-1 (views, no copy)."""
        return self._map(lambda x: x[start:stop])

    @property
    def batch(self) -> int:
        return next(getattr(self, f.name) for f in dataclasses.fields(self)
                    if isinstance(getattr(self, f.name), torch.Tensor)).shape[0]


@dataclass
class SceneBatch(TensorFields):
    """Rendered images with their ground truth. For clips every tensor that changes over time
    gains a frame dimension after the batch: images [B, T, 3, S, S], masks [B, T, n, S, S]..."""

    images: torch.Tensor  # [B, 3, S, S] in [-1, 1]
    masks: torch.Tensor  # [B, n, S, S] in [0, 1]: each object's visible pixels; 0 for absent slots
    centers: torch.Tensor  # [B, n, 2] (x, y) in normalised image units at the rendered time
    kinds: torch.Tensor  # [B, n] long; -1 for absent slots
    present: torch.Tensor  # [B, n] bool
    keypoints: torch.Tensor | None = None  # [B, K, 2] joint positions (figures only)
    parts: torch.Tensor | None = None  # [B, S, S] long: each pixel's part (figures only; data.figures.PARTS)

    def unflatten(self, batch: int, frames: int) -> SceneBatch:
        """[B * T, ...] -> [B, T, ...] for the per-frame fields; kinds/present stay per clip."""
        def split(x):
            return x.reshape(batch, frames, *x.shape[1:])
        return SceneBatch(images=split(self.images), masks=split(self.masks), centers=split(self.centers),
                          kinds=split(self.kinds)[:, 0], present=split(self.present)[:, 0],
                          keypoints=None if self.keypoints is None else split(self.keypoints),
                          parts=None if self.parts is None else split(self.parts))

    def frames(self) -> SceneBatch:
        """[B, T, ...] -> [B * T, ...]: a clip batch as one still image per frame (unflatten's
        inverse), so that what reads a still batch's ground truth reads each frame's."""
        batch, frames = self.images.shape[:2]

        def join(x):
            return x.reshape(batch * frames, *x.shape[2:])
        return SceneBatch(images=join(self.images), masks=join(self.masks), centers=join(self.centers),
                          kinds=self.kinds.repeat_interleave(frames, 0),
                          present=self.present.repeat_interleave(frames, 0),
                          keypoints=None if self.keypoints is None else join(self.keypoints),
                          parts=None if self.parts is None else join(self.parts))


@dataclass
class SceneLayout(TensorFields):
    """Where a batch's objects are, without the pixels (Dataset.sample_layout): the fields
    of SceneBatch that a layout-conditional trainer reads."""

    centers: torch.Tensor  # [B, n, 2], as SceneBatch.centers
    present: torch.Tensor  # [B, n] bool
    keypoints: torch.Tensor | None = None  # [B, K, 2] (figures only)
    kinds: torch.Tensor | None = None  # [B, n] long, as SceneBatch.kinds (rooms only)


def per_sample_time(t: float | torch.Tensor, batch: int, device: torch.device | str) -> torch.Tensor:
    """A real time in seconds, one per batch element: [B] float32 on `device`."""
    t = torch.as_tensor(t, dtype=torch.float32)
    if t.dim() == 0:
        t = t.expand(batch)
    if t.shape != (batch,):
        raise ValueError(f"t must be a number or a tensor of shape [{batch}], got shape {tuple(t.shape)}")
    return t.to(device)


def oscillate(base: torch.Tensor, amp: torch.Tensor, omega: torch.Tensor, phase: torch.Tensor,
              t: torch.Tensor) -> torch.Tensor:
    """base + amp * (sin(omega t + phase) - sin(phase)): smooth in t and equal to base at t = 0,
    so a still scene (amp = 0) and the first frame of its clip are the same picture.
    t is [B]; the other tensors are [B, ...]."""
    t = t.view(-1, *([1] * (base.dim() - 1)))
    return base + amp * (torch.sin(omega * t + phase) - torch.sin(phase))


def uniform(shape, low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    """U(low, high) on the CPU: all random parameters are drawn there, so a seed gives the same
    scene whatever device renders it."""
    return low + (high - low) * torch.rand(shape, generator=generator)
