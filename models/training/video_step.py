"""One training step of a generator with time (StyleGAN-V's sparse training).

Each clip contributes 3 frames at sorted random real times in [0, CLIP_SECONDS] with random
gaps, for real clips (the procedural renderer at those times) and fake ones alike (one
content latent and one motion-code sequence per clip, the frames' windows of it). The
video discriminator sees each clip's frames side by side with their time gaps. The other
terms are those of still images, applied per frame: GradCAM alignment (through a view of
the video D as a D of single frames), block distortion, layout conditioning (the heatmap
of the clip's layout at t = 0, the same on every frame, as the generator's heatmaps are).
With the projected recipe (issue 23) the projected D also judges every frame as a still
image, its per-pixel classes from each frame's rendered ground truth, beside the video D;
move consistency (issue 14) moves one object of each frame, as for still images.
"""
from __future__ import annotations

import torch
from torch import nn

from models.data import SceneBatch, render_clip_frames, sample_times
from models.document.scene import DEFAULT_OBJECT_SIGMA
from models.nets.generator import Latents
from models.nets.motion import clip_motion
from models.training.losses import d_logistic, g_nonsaturating, move_consistency_loss

CLIP_FRAMES = 3


class FramesView(nn.Module):
    """The video D seen as a D of single frames [B*T, C, S, S], for the losses written for
    images. Its parameters are the video D's."""

    def __init__(self, video_d: nn.Module, times: torch.Tensor):
        super().__init__()
        self.video_d = video_d
        self.times = times

    def forward(self, frames: torch.Tensor, return_features: bool = False):
        B, T = self.times.shape
        return self.video_d(frames.unflatten(0, (B, T)), self.times, return_features)


def video_r1(video_d: nn.Module, clips: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """||grad D||^2 with respect to each real clip (all its frames), averaged over clips."""
    clips = clips.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(video_d(clips, times).sum(), clips, create_graph=True)
    return grad.square().flatten(1).sum(dim=1).mean()


def fake_clip_latents(trainer, B: int) -> tuple[Latents, torch.Tensor]:
    """(latents of B*T frames, times [B, T]): content drawn once per clip, motion per frame."""
    G, rng = trainer.G, trainer.rng
    lat = G.sample_latents(B, rng)
    if trainer.layout:  # real layouts (at t = 0), as in the still-image trainer
        params = trainer.data.sample_params(B, rng)
        lat.centers = params.center.clone()
        lat.sigmas = lat.sigmas * params.present.to(lat.sigmas.dtype)
        if G.config.object_kinds:  # the kinds the renderer draws there (GeneratorConfig.object_kinds)
            lat.kinds = torch.where(params.present, params.kind, -1)
    times = sample_times(B, CLIP_FRAMES, rng)
    lat = lat.repeat_each(CLIP_FRAMES)
    lat.motion_codes, lat.motion_alpha = clip_motion(G.config, times, rng)
    return lat.to(trainer.device), times.to(trainer.device)


def real_clips(trainer, B: int) -> tuple[torch.Tensor, torch.Tensor, SceneBatch]:
    """(frames [B*T, C, S, S], times [B, T], the frames' ground truth as a still batch of
    B*T) from the procedural clips."""
    data = trainer.data
    params = data.sample_params(B, trainer.rng)
    times = sample_times(B, CLIP_FRAMES, trainer.rng)
    truth = render_clip_frames(data.world, params, times, data.size, trainer.device).frames()
    frames = truth.images
    if trainer.layout:
        present = params.present.to(trainer.device).repeat_interleave(CLIP_FRAMES, 0)
        centers = params.center.to(trainer.device).repeat_interleave(CLIP_FRAMES, 0)
        sigmas = torch.full_like(centers[..., 0], DEFAULT_OBJECT_SIGMA) * present.to(centers.dtype)
        frames = trainer._with_heatmap(frames, centers, sigmas)
    return frames, times.to(trainer.device), truth


def video_train_step(trainer) -> dict[str, torch.Tensor]:
    cfg, G, D, B = trainer.cfg, trainer.G, trainer.D, trainer.batch
    stats: dict[str, torch.Tensor] = {}

    def clips(frames: torch.Tensor) -> torch.Tensor:
        return frames.unflatten(0, (B, CLIP_FRAMES))

    def seen(frames: torch.Tensor, lat: Latents) -> torch.Tensor:  # what D sees of fake frames
        return trainer._with_heatmap(frames, lat.centers, lat.sigmas) if trainer.layout else frames

    # The projected recipe (ClipsProjectedDiscriminator): the projected D judges the frames,
    # the video D (its `pixel`) the clips, weighed by d_pixel; otherwise the video D alone.
    video_d = D.pixel if trainer.projected else D
    video_weight = cfg.d_pixel if trainer.projected else 1.0

    # Discriminator: logistic loss on whole clips, lazy R1.
    lat, fake_times = fake_clip_latents(trainer, B)
    real, real_times, truth = real_clips(trainer, B)
    with torch.no_grad(), trainer.amp:
        fake = seen(G(lat), lat)
    with trainer.amp:
        loss_d = video_weight * d_logistic(video_d(clips(real), real_times).float(),
                                           video_d(clips(fake), fake_times).float())
        if trainer.projected:
            stats["video_d"] = loss_d.detach()
            loss_d = loss_d + trainer._projected_d_loss(real, truth, fake, stats)
    trainer.update_d(loss_d, lambda: video_r1(video_d, clips(real), real_times), stats)

    # Generator: non-saturating loss on clips + per-frame alignment and block distortion.
    D.requires_grad_(False)
    lat, fake_times = fake_clip_latents(trainer, B)
    gc = trainer.gen_config
    do_align = (cfg.align_weight > 0 and not trainer.layout and trainer.step % cfg.align_every == 0
                and (gc.objects or gc.hierarchical))
    do_dist = cfg.distortion_weight > 0 and gc.grid and trainer.step % cfg.distortion_every == 0
    do_move = cfg.move_weight > 0 and trainer.step % cfg.move_every == 0
    with trainer.amp:
        fake = G(lat, noise_mode="const" if do_dist or do_move else "random")
        loss_g = video_weight * g_nonsaturating(video_d(clips(seen(fake, lat)), fake_times).float())
        if trainer.projected:
            stats["video_g"] = loss_g.detach()
            loss_g = loss_g + trainer._projected_g_loss(seen(fake, lat), stats, lat)
        if do_move:  # each frame, at its own time, with one of its objects moved (issue 14)
            move = move_consistency_loss(G, lat, fake, generator_rng=trainer.rng).float()
            stats["move"] = move.detach()
            loss_g = loss_g + cfg.move_weight * move
    trainer.update_g(loss_g, lat, fake, FramesView(video_d, fake_times), do_align, do_dist, stats)
    trainer.end_step(lat, B)
    return stats
