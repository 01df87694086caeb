"""Procedural training data with ground truth, rendered per batch on any device, seeded,
no files: rooms with movable objects, articulated figures, and clips of both in continuous
time. See DESIGN.md, "Data the project trains on". Plain PyTorch: no Qt here.
"""
from __future__ import annotations

import torch

from models.data.batch import SceneBatch, SceneLayout, per_sample_time
from models.data.clips import (
    CLIP_SECONDS,
    add_figure_motion,
    add_room_motion,
    render_clip_frames,
    sample_clip_params,
    sample_times,
)
from models.data.figures import KEYPOINTS, FigureParams, posed, render_figures, sample_figures
from models.data.rooms import KINDS as ROOM_KINDS
from models.data.rooms import RoomParams, render_rooms, sample_rooms

DATASETS = ("rooms", "figures", "clips-rooms", "clips-figures")


class Dataset:
    """A named procedural data set at one resolution on one device. Every call draws fresh
    scenes from the generator it is given, so a seed fixes a batch."""

    def __init__(self, name: str, size: int, device: torch.device | str = "cpu", n_objects: int = 3):
        if name not in DATASETS:
            raise ValueError(f"unknown dataset {name!r}; known: {list(DATASETS)}")
        if size < 16 or size > 256 or size & (size - 1):
            raise ValueError(f"size must be a power of two in 16..256, got {size}")
        self.name, self.size, self.device, self.n_objects = name, size, torch.device(device), n_objects
        self.world = name.removeprefix("clips-")  # 'rooms' or 'figures'
        self.is_clips = name.startswith("clips-")

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, size={self.size}, device={str(self.device)!r})"

    def sample_params(self, batch: int, generator: torch.Generator | None = None) -> RoomParams | FigureParams:
        """Scene parameters (CPU tensors): moving ones for clip data sets."""
        if self.is_clips:
            return sample_clip_params(self.world, batch, self.n_objects, generator)
        if self.world == "rooms":
            return sample_rooms(batch, self.n_objects, generator)
        return sample_figures(batch, generator)

    def render(self, params: RoomParams | FigureParams, t: float | torch.Tensor = 0.0) -> SceneBatch:
        if self.world == "rooms":
            assert isinstance(params, RoomParams)  # what sample_params draws for this world
            return render_rooms(params, self.size, t=t, device=self.device)
        assert isinstance(params, FigureParams)
        return render_figures(params, self.size, t=t, device=self.device)

    def sample(self, batch: int, generator: torch.Generator | None = None) -> SceneBatch:
        """Still images with ground truth; for clip data sets, one frame of each clip at a
        random time."""
        params = self.sample_params(batch, generator)
        t = sample_times(batch, 1, generator)[:, 0] if self.is_clips else 0.0
        return self.render(params, t)

    def sample_layout(self, batch: int, generator: torch.Generator | None = None) -> SceneLayout:
        """What `sample` would return as layout (centers, presence, a figure's keypoints),
        without drawing the pixels: the same random draws, so the stream goes on as after
        `sample`. A layout-conditional trainer takes real layouts for G twice a step and
        never looks at their images (8 figures at 64 px: 10 ms to render, 1 ms to draw)."""
        params = self.sample_params(batch, generator)
        t = per_sample_time(sample_times(batch, 1, generator)[:, 0] if self.is_clips else 0.0, batch, "cpu")
        if isinstance(params, RoomParams):
            layout = SceneLayout(centers=params.centers_at(t), present=params.present,
                                 kinds=torch.where(params.present, params.kind, -1))
        else:
            root, _, keypoints = posed(params, t)
            layout = SceneLayout(centers=root[:, None, :], present=torch.ones(batch, 1, dtype=torch.bool),
                                 keypoints=keypoints)
        return layout.to(self.device)

    def sample_clips(self, batch: int, frames: int = 3,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(images [B, T, 3, S, S], times [B, T]): T frames per clip at sorted random real
        times in [0, CLIP_SECONDS], as sparse video training wants them."""
        if not self.is_clips:
            raise ValueError(f"dataset {self.name!r} has no clips; use one of "
                             f"{[d for d in DATASETS if d.startswith('clips-')]}")
        params = self.sample_params(batch, generator)
        times = sample_times(batch, frames, generator)
        return render_clip_frames(self.world, params, times, self.size, self.device).images, times.to(self.device)


def make_dataset(name: str, size: int, device: torch.device | str = "cpu", n_objects: int = 3) -> Dataset:
    return Dataset(name, size, device, n_objects)


__all__ = [
    "CLIP_SECONDS", "DATASETS", "KEYPOINTS", "ROOM_KINDS", "Dataset", "FigureParams", "RoomParams", "SceneBatch",
    "SceneLayout",
    "add_figure_motion", "add_room_motion", "make_dataset", "render_clip_frames", "render_figures", "render_rooms",
    "sample_clip_params", "sample_figures", "sample_rooms", "sample_times",
]
