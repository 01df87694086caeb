"""Metrics of the time capability (StyleGAN-V generators).

- `frame_change_25fps`: mean absolute change of pixels (in [0, 1]) between consecutive
  frames at 25 fps, over generated videos; `frame_change_25fps_real` is the same over the
  procedural clips, the motion a generator should match (0 would be a still; far above
  the real value, flicker).
- `fps_consistency_max_abs`: the largest difference (uint8 levels) between the frame at t
  of a 25 fps sequence and the frame at the same t of a 60 fps sequence, rendered through
  the export path (models.io.video.frames). A continuous-time generator must score exactly 0.
"""
from __future__ import annotations

import numpy as np
import torch

from models.document.scene import SEED_LIMIT, initial_state
from models.io.video import frames
from models.nets.generator import Generator
from models.nets.motion import seeded_motion

TIME_KEYS = ("frame_change_25fps", "frame_change_25fps_real", "fps_consistency_max_abs")
FPS = 25


def frame_change(videos: torch.Tensor) -> float:
    """videos [N, T, 3, S, S] in [-1, 1] -> mean |frame_(i+1) - frame_i| with pixels in [0, 1]."""
    return float(((videos[:, 1:] - videos[:, :-1]).abs() / 2).mean())


@torch.no_grad()
def generated_videos(G: Generator, videos: int, frames_per_video: int, rng: torch.Generator,
                     fps: float = FPS) -> torch.Tensor:
    """[N, T, 3, S, S]: random content (as in training), each video its own motion seed,
    frames at i / fps through the same seeded motion codes as render()."""
    cfg, device = G.config, G.const.device
    lat = G.sample_latents(videos, rng).repeat_each(frames_per_video)
    seeds = torch.randint(SEED_LIMIT, (videos,), generator=rng).tolist()
    windows = [seeded_motion(cfg, seed, i / fps) for seed in seeds for i in range(frames_per_video)]
    lat.motion_codes = torch.stack([codes for codes, _ in windows])
    lat.motion_alpha = torch.tensor([alpha for _, alpha in windows], dtype=torch.float32)
    images = G(lat.to(device), noise_mode="const")
    return images.unflatten(0, (videos, frames_per_video)).float()


@torch.no_grad()
def real_videos(world: str, size: int, videos: int, frames_per_video: int, rng: torch.Generator,
                device: torch.device | str = "cpu", n_objects: int = 3, fps: float = FPS) -> torch.Tensor:
    from models.data import render_clip_frames, sample_clip_params

    params = sample_clip_params(world, videos, n_objects, rng)
    times = (torch.arange(frames_per_video) / fps).expand(videos, -1)
    return render_clip_frames(world, params, times, size, device).images.float()


def fps_consistency(G: Generator, scenes: int = 2, seconds: float = 0.4) -> int:
    """Max |frame(t) at 25 fps - frame(t) at 60 fps| over the shared times (every 0.2 s)."""
    worst = 0
    for seed in range(scenes):
        state = initial_state(G.config, seed)
        at25 = list(frames(G, state, seconds, 25))
        at60 = list(frames(G, state, seconds, 60))
        for k in range(int(round(seconds * 5)) + 1):  # t = k / 5 is frame 5k at 25 fps, 12k at 60
            if 5 * k < len(at25) and 12 * k < len(at60):
                diff = np.abs(at25[5 * k].astype(np.int16) - at60[12 * k].astype(np.int16))
                worst = max(worst, int(diff.max()))
    return worst


def temporal_metrics(G: Generator, videos: int = 32, frames_per_video: int = 8, seed: int = 0,
                     world: str | None = None, batch: int = 8) -> dict:
    """The time metrics of a generator with the time capability (see the module doc)."""
    if G.config.time is None:
        raise ValueError("temporal metrics need a generator with the time capability")
    cfg = G.config
    world = world or ("figures" if cfg.hierarchical else "rooms")
    fake_rng = torch.Generator().manual_seed(seed * 1000 + 5)
    real_rng = torch.Generator().manual_seed(seed * 1000 + 6)
    fake, real = [], []
    for start in range(0, videos, batch):
        n = min(batch, videos - start)
        fake.append(frame_change(generated_videos(G, n, frames_per_video, fake_rng)) * n)
        real.append(frame_change(real_videos(world, cfg.resolution, n, frames_per_video, real_rng,
                                             G.const.device, max(1, cfg.objects))) * n)
    return {"frame_change_25fps": sum(fake) / videos, "frame_change_25fps_real": sum(real) / videos,
            "fps_consistency_max_abs": fps_consistency(G)}
