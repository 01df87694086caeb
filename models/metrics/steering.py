"""Steering metrics, defined once (DESIGN.md) and used by tests, `steergan eval` and README.

- co-move ratio (SpatialGAN §4.3): move a heatmap center by p, locate the object before
  and after, q = its displacement, score p·q/|p|², averaged.
- block distortion (SSN): resample one block; mean squared change (pixels in [0, 1])
  outside it, and the ratio of the change inside to outside.
- style-swap locality: new style code for one object; change inside its heatmap region
  over the change outside.
"""
from __future__ import annotations

import math
from dataclasses import replace

import torch

from ..generator import Generator
from ..training.losses import block_outside_mask

MIN_MASS = 4.0  # probe pixels of the object inside the window; below that nothing was found


def _disc(centers: torch.Tensor, radius: torch.Tensor, size: int) -> torch.Tensor:
    """[B, size, size] hard discs (normalised units), one per image."""
    coords = (torch.arange(size, device=centers.device, dtype=torch.float32) + 0.5) / size
    dx = coords.view(1, 1, size) - centers[:, 0].view(-1, 1, 1)
    dy = coords.view(1, size, 1) - centers[:, 1].view(-1, 1, 1)
    return ((dx * dx + dy * dy) <= radius.view(-1, 1, 1) ** 2).float()


def _centroid(weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    size = weights.shape[-1]
    coords = (torch.arange(size, device=weights.device, dtype=torch.float32) + 0.5) / size
    mass = weights.sum(dim=(1, 2))
    x = (weights * coords.view(1, 1, size)).sum(dim=(1, 2)) / mass.clamp_min(1e-8)
    y = (weights * coords.view(1, size, 1)).sum(dim=(1, 2)) / mass.clamp_min(1e-8)
    return torch.stack([x, y], dim=1), mass


def co_move_scores(probs_before: torch.Tensor, probs_after: torch.Tensor, centers: torch.Tensor,
                   deltas: torch.Tensor, radius: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image p·q/|p|² from probe class probabilities [B, K, S, S] before and after.

    The object is looked for in one window for both images, a disc around the midpoint of
    the old and new center covering both: a window that followed the heatmap would report
    motion even for a generator that ignores it. Its class is the non-background class
    with the most mass around the old center (unless `classes` gives it), so other objects
    of other kinds in the window do not count.
    """
    size = probs_before.shape[-1]
    if classes is None:
        near = _disc(centers, radius * 0.5, size)
        classes = (probs_before[:, 1:] * near[:, None]).sum(dim=(2, 3)).argmax(dim=1) + 1
    idx = torch.arange(len(classes), device=probs_before.device)
    window = _disc(centers + deltas / 2, deltas.norm(dim=1) / 2 + radius, size)
    c0, m0 = _centroid(probs_before[idx, classes] * window)
    c1, m1 = _centroid(probs_after[idx, classes] * window)
    q = c1 - c0
    score = (deltas * q).sum(dim=1) / deltas.square().sum(dim=1).clamp_min(1e-12)
    found = (m0 >= MIN_MASS) & (m1 >= MIN_MASS)
    return torch.where(found, score, torch.zeros_like(score))


def random_moves(batch: int, rng: torch.Generator, lo: float = 0.2, hi: float = 0.8,
                 step: tuple[float, float] = (0.12, 0.22)) -> tuple[torch.Tensor, torch.Tensor]:
    """Start centers inside the frame and displacements that keep the end inside too."""
    start = lo + (hi - lo) * torch.rand(batch, 2, generator=rng)
    angle = 2 * math.pi * torch.rand(batch, generator=rng)
    length = step[0] + (step[1] - step[0]) * torch.rand(batch, generator=rng)
    end = (start + length[:, None] * torch.stack([angle.cos(), angle.sin()], 1)).clamp(lo - 0.05, hi + 0.05)
    return start, end - start


@torch.no_grad()
def co_move_ratio(G: Generator, probe, samples: int, rng: torch.Generator, offset_scale: float = 1.0,
                  batch: int = 16) -> float:
    cfg, device = G.config, G.const.device
    figure_class = probe.classes.index("figure")
    scores = []
    for start in range(0, samples, batch):
        B = min(batch, samples - start)
        lat = G.sample_latents(B, rng, device)
        centers, deltas = random_moves(B, rng)
        centers, deltas = centers.to(device), deltas.to(device)
        if cfg.hierarchical:
            before = replace(lat, root=centers)
            after = replace(lat, root=centers + deltas)
            radius, classes = lat.root_sigma * 1.5, torch.full((B,), figure_class, device=device)
        elif cfg.objects:
            which = torch.randint(cfg.objects, (B,), generator=rng).to(device)
            idx = torch.arange(B, device=device)
            # keep the other objects inside the frame too, so they can be found and ignored
            c_before = 0.15 + 0.7 * torch.rand(lat.centers.shape, generator=rng).to(device)
            c_before[idx, which] = centers
            c_after = c_before.clone()
            c_after[idx, which] = centers + deltas
            before, after = replace(lat, centers=c_before), replace(lat, centers=c_after)
            radius, classes = lat.sigmas[idx, which] * 2, None
        else:
            raise ValueError("the co-move ratio needs a generator with objects or hierarchical heatmaps")
        img0 = G(before, offset_scale=offset_scale, noise_mode="const")
        img1 = G(after, offset_scale=offset_scale, noise_mode="const")
        p0, p1 = probe(img0)[0].softmax(1), probe(img1)[0].softmax(1)
        scores.append(co_move_scores(p0, p1, centers, deltas, radius, classes))
    return float(torch.cat(scores).mean())


@torch.no_grad()
def block_metrics(G: Generator, samples: int, rng: torch.Generator, offset_scale: float = 1.0,
                  batch: int = 16) -> tuple[float, float]:
    """(mean squared change outside the resampled block, inside change / outside change)."""
    cfg, device = G.config, G.const.device
    outside_sum, inside_sum = 0.0, 0.0
    for start in range(0, samples, batch):
        B = min(batch, samples - start)
        lat = G.sample_latents(B, rng, device)
        lat = replace(lat, centers=0.15 + 0.7 * torch.rand(lat.centers.shape, generator=rng).to(device)) \
            if cfg.objects else lat
        block = torch.randint(cfg.grid ** 2, (B,), generator=rng).to(device)
        z = lat.z_blocks.clone()
        z[torch.arange(B, device=device), block] = torch.randn(B, cfg.z_dim, generator=rng).to(device)
        img0 = G(lat, offset_scale=offset_scale, noise_mode="const")
        img1 = G(replace(lat, z_blocks=z), offset_scale=offset_scale, noise_mode="const")
        change = ((img1 - img0) / 2).square().mean(dim=1, keepdim=True)  # pixels in [0, 1]
        outside = block_outside_mask(block, cfg.grid, change.shape[-1])
        outside_sum += float(((change * outside).sum(dim=(1, 2, 3)) / outside.sum(dim=(1, 2, 3))).sum())
        inside_sum += float(((change * (1 - outside)).sum(dim=(1, 2, 3)) / (1 - outside).sum(dim=(1, 2, 3))).sum())
    out, inside = outside_sum / samples, inside_sum / samples
    return out, inside / max(out, 1e-12)


@torch.no_grad()
def style_swap_locality(G: Generator, samples: int, rng: torch.Generator, offset_scale: float = 1.0,
                        batch: int = 16) -> float:
    """Change inside the object's heatmap region (H > e^-2, within 2 sigma) over outside."""
    cfg, device = G.config, G.const.device
    inside_sum, outside_sum = 0.0, 0.0
    for start in range(0, samples, batch):
        B = min(batch, samples - start)
        lat = G.sample_latents(B, rng, device)
        lat = replace(lat, centers=0.15 + 0.7 * torch.rand(lat.centers.shape, generator=rng).to(device))
        which = torch.randint(cfg.objects, (B,), generator=rng).to(device)
        idx = torch.arange(B, device=device)
        z = lat.z_objects.clone()
        z[idx, which] = torch.randn(B, cfg.z_dim, generator=rng).to(device)
        img0 = G(lat, offset_scale=offset_scale, noise_mode="const")
        img1 = G(replace(lat, z_objects=z), offset_scale=offset_scale, noise_mode="const")
        change = ((img1 - img0) / 2).square().mean(dim=1)
        region = (G.object_heatmaps(lat, change.shape[-1])[idx, which] > math.exp(-2)).float()
        inside_sum += float(((change * region).sum(dim=(1, 2)) / region.sum(dim=(1, 2)).clamp_min(1)).sum())
        outside_sum += float(((change * (1 - region)).sum(dim=(1, 2)) / (1 - region).sum(dim=(1, 2))).sum())
    return (inside_sum / samples) / max(outside_sum / samples, 1e-12)

