"""Clips: the rooms and figures worlds in continuous time.

Motion is a smooth function of a real time t in seconds (sinusoids around the t = 0 pose),
so rendering at any t is ground truth and any frame rate can be asked for. Motion is added
to still parameters, which keeps t = 0 of a clip identical to the still scene.
"""
from __future__ import annotations

import dataclasses

import torch

from models.data.batch import SceneBatch, uniform
from models.data.draw import TWO_PI
from models.data.figures import ANGLES, FigureParams, render_figures, sample_figures
from models.data.rooms import RoomParams, render_rooms, sample_rooms

CLIP_SECONDS = 4.0  # training clips sample times in [0, CLIP_SECONDS]
KINDS = ("rooms", "figures")


def add_room_motion(params: RoomParams, generator: torch.Generator | None = None) -> RoomParams:
    """Objects slide (up to ~0.12 image units, periods of 3..15 s), the light swings."""
    B, n = params.kind.shape
    g = generator
    return dataclasses.replace(
        params, motion_amp=uniform((B, n, 2), 0, .12, g), motion_omega=uniform((B, n, 2), .4, 2, g),
        motion_phase=uniform((B, n, 2), 0, TWO_PI, g), light_amp=uniform(B, 0, .8, g),
        light_omega=uniform(B, .2, 1, g), light_phase=uniform(B, 0, TWO_PI, g))


def add_figure_motion(params: FigureParams, generator: torch.Generator | None = None) -> FigureParams:
    """Limbs swing (up to 0.8 rad, periods of 1.5..6 s), torso and head sway less (a figure
    that tips over and back every second is not a motion to learn), the figure drifts."""
    B, k = params.batch, len(ANGLES)
    g = generator
    reach = torch.tensor([.3 if name in ("tilt", "head") else .8 for name in ANGLES])
    return dataclasses.replace(
        params, angle_amp=uniform((B, k), 0, 1, g) * reach, angle_omega=uniform((B, k), 1, 4, g),
        angle_phase=uniform((B, k), 0, TWO_PI, g), root_amp=uniform((B, 2), 0, .1, g),
        root_omega=uniform((B, 2), .3, 1.5, g), root_phase=uniform((B, 2), 0, TWO_PI, g))


def sample_clip_params(kind: str, batch: int, n_objects: int = 3,
                       generator: torch.Generator | None = None) -> RoomParams | FigureParams:
    """Moving scenes of `kind` ('rooms' or 'figures'), CPU tensors."""
    _check_kind(kind)
    if kind == "rooms":
        return add_room_motion(sample_rooms(batch, n_objects, generator), generator)
    return add_figure_motion(sample_figures(batch, generator), generator)


def sample_times(batch: int, frames: int, generator: torch.Generator | None = None,
                 seconds: float = CLIP_SECONDS) -> torch.Tensor:
    """[B, T] sorted real times in [0, seconds], with random gaps (sparse training frames)."""
    return uniform((batch, frames), 0.0, seconds, generator).sort(dim=1).values


def render_clip_frames(kind: str, params: RoomParams | FigureParams, times: torch.Tensor, size: int,
                       device: torch.device | str = "cpu") -> SceneBatch:
    """Frames of each scene at its own times [B, T] (seconds): a SceneBatch whose images are
    [B, T, 3, S, S], masks [B, T, n, S, S], centers [B, T, n, 2] (keypoints [B, T, K, 2])."""
    _check_kind(kind)
    B, T = times.shape
    if B != params.batch:
        raise ValueError(f"times has {B} rows but the params hold {params.batch} scenes")
    flat = params.repeat_each(T)  # one copy of each scene per frame: all frames in one batched render
    render = render_rooms if kind == "rooms" else render_figures
    return render(flat, size, t=times.reshape(-1).float(), device=device).unflatten(B, T)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown clip kind {kind!r}; known: {list(KINDS)}")
