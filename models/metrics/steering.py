"""Steering metrics, defined once (DESIGN.md) and used by tests, `steergan eval` and README.

- co-move ratio (SpatialGAN §4.3): move a heatmap center by p, locate the object before
  and after, q = its displacement, score p·q/|p|², averaged.
- block distortion (SSN): resample one block; mean squared change (pixels in [0, 1])
  outside it, and the ratio of the change inside to outside; and as a user sees it, the
  mean absolute change in uint8 levels inside the block against beyond half a block.
- style-swap locality: new style code for one object; change inside its heatmap region
  over the change outside.
"""
from __future__ import annotations

import math
from dataclasses import replace

import torch

from models.nets.generator import Generator
from models.nets.heatmaps import block_outside_mask, translate

MIN_MASS = 4.0  # probe pixels of the object inside the window; below that nothing was found
WINDOW_MARGIN = 0.15  # the matching window reaches this far (image units) beyond both centers


def _disc(centers: torch.Tensor, radius: torch.Tensor, size: int) -> torch.Tensor:
    """[B, size, size] hard discs (normalised units), one per image."""
    coords = (torch.arange(size, device=centers.device, dtype=torch.float32) + 0.5) / size
    dx = coords.view(1, 1, size) - centers[:, 0].view(-1, 1, 1)
    dy = coords.view(1, size, 1) - centers[:, 1].view(-1, 1, 1)
    return ((dx * dx + dy * dy) <= radius.view(-1, 1, 1) ** 2).float()


ALPHAS = torch.linspace(-0.5, 1.5, 81)  # candidate fractions of the heatmap's move


def co_move_scores(probs_before: torch.Tensor, probs_after: torch.Tensor, centers: torch.Tensor,
                   deltas: torch.Tensor, radius: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image p·q/|p|² from probe class probabilities [B, K, S, S] before and after.

    q is found by matching, not by centroids: the object's map before, translated by a·p,
    is compared with the map after, and the best a (sub-step by a parabola) is the score.
    A centroid inside a window is biased whenever the window cuts the object; matching
    is not. The comparison runs in one window for both images, around the midpoint of the
    old and new center and covering both: a window that followed the heatmap would report
    motion even for a generator that ignores it. The map is the object's class (the
    non-background class with most mass around the old center, unless `classes` gives it),
    so objects of other kinds do not count.
    """
    size = probs_before.shape[-1]
    if classes is None:
        near = _disc(centers, radius * 0.5, size)
        classes = (probs_before[:, 1:] * near[:, None]).sum(dim=(2, 3)).argmax(dim=1) + 1
    idx = torch.arange(len(classes), device=probs_before.device)
    m0, m1 = probs_before[idx, classes], probs_after[idx, classes]
    window = _disc(centers + deltas / 2, deltas.norm(dim=1) / 2 + radius, size)
    alphas = ALPHAS.to(m0.device)
    errors = torch.stack([((m1 - translate(m0[:, None], a * deltas)[:, 0]).square() * window).sum(dim=(1, 2))
                          for a in alphas], 1)
    best = errors.argmin(dim=1).clamp(1, len(alphas) - 2)
    e_l, e_c, e_r = errors[idx, best - 1], errors[idx, best], errors[idx, best + 1]
    curvature = e_l - 2 * e_c + e_r
    step = alphas[1] - alphas[0]
    refine = torch.where(curvature > 1e-12, 0.5 * (e_l - e_r) / curvature.clamp_min(1e-12), torch.zeros_like(e_c))
    score = alphas[best] + refine.clamp(-1, 1) * step
    still = errors[:, (alphas.abs() < 1e-6).nonzero()[0, 0]] <= 1e-12  # identical: no motion at all
    found = ((m0 * window).sum(dim=(1, 2)) >= MIN_MASS) & ((m1 * window).sum(dim=(1, 2)) >= MIN_MASS) & ~still
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
            classes = torch.full((B,), figure_class, device=device)
        elif cfg.objects:
            which = torch.randint(cfg.objects, (B,), generator=rng).to(device)
            idx = torch.arange(B, device=device)
            assert lat.centers is not None  # sample_latents draws centers for a generator with objects
            # keep the other objects inside the frame too, so they can be found and ignored
            c_before = 0.15 + 0.7 * torch.rand(lat.centers.shape, generator=rng).to(device)
            c_before[idx, which] = centers
            c_after = c_before.clone()
            c_after[idx, which] = centers + deltas
            before, after = replace(lat, centers=c_before), replace(lat, centers=c_after)
            classes = None
        else:
            raise ValueError("the co-move ratio needs a generator with objects or hierarchical heatmaps")
        img0 = G(before, offset_scale=offset_scale, noise_mode="const")
        img1 = G(after, offset_scale=offset_scale, noise_mode="const")
        p0, p1 = probe(img0)[0].softmax(1), probe(img1)[0].softmax(1)
        radius = torch.full((B,), WINDOW_MARGIN, device=device)
        scores.append(co_move_scores(p0, p1, centers, deltas, radius, classes))
    return float(torch.cat(scores).mean())


def block_margin_outside(block: torch.Tensor, grid: int, size: int) -> torch.Tensor:
    """[B, 1, size, size]: 1 where a pixel is more than half a block away from block
    `block[b]` (row-major index), 0 inside the block and in that margin around it."""
    rows, cols = block // grid, block % grid
    edge = size / grid  # block side in pixels
    centers = (torch.arange(size, device=block.device, dtype=torch.float32) + 0.5)
    # distance (pixels) from the block's span along each axis; 0 inside it
    def gap(index: torch.Tensor) -> torch.Tensor:
        lo, hi = (index.float() * edge).view(-1, 1), ((index.float() + 1) * edge).view(-1, 1)
        return (lo - centers.view(1, -1)).clamp_min(0) + (centers.view(1, -1) - hi).clamp_min(0)
    near = (gap(rows)[:, :, None] <= edge / 2) & (gap(cols)[:, None, :] <= edge / 2)
    return (~near).float()[:, None]


def block_change_levels(before: torch.Tensor, after: torch.Tensor, block: torch.Tensor,
                        grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, the mean absolute change in uint8 levels (images [-1, 1] rounded to levels,
    as shown) inside the block, and outside it beyond a margin of half a block: [B], [B]."""
    size = before.shape[-1]
    to_levels = lambda x: ((x.float().clamp(-1, 1) + 1) * 127.5).round()
    change = (to_levels(after) - to_levels(before)).abs().mean(dim=1, keepdim=True)
    inside = 1 - block_outside_mask(block, grid, size)
    outside = block_margin_outside(block, grid, size)
    mean_in = (change * inside).sum(dim=(1, 2, 3)) / inside.sum(dim=(1, 2, 3))
    mean_out = (change * outside).sum(dim=(1, 2, 3)) / outside.sum(dim=(1, 2, 3)).clamp_min(1)
    return mean_in, mean_out


def block_pairs(G: Generator, samples: int, rng: torch.Generator, batch: int = 16):
    """Yields (latents, the same with one block per picture resampled, the blocks [B]), a
    batch at a time, the other objects inside the frame: the block report's draws, the one
    source of them (models/tools/leak_profile.py replays them)."""
    cfg, device = G.config, G.const.device
    for start in range(0, samples, batch):
        B = min(batch, samples - start)
        lat = G.sample_latents(B, rng, device)
        if cfg.objects:
            assert lat.centers is not None  # sample_latents draws centers for a generator with objects
            lat = replace(lat, centers=0.15 + 0.7 * torch.rand(lat.centers.shape, generator=rng).to(device))
        block = torch.randint(cfg.grid ** 2, (B,), generator=rng).to(device)
        assert lat.z_blocks is not None  # block metrics are for generators with a grid: it draws z_blocks
        z = lat.z_blocks.clone()
        z[torch.arange(B, device=device), block] = torch.randn(B, cfg.z_dim, generator=rng).to(device)
        yield lat, replace(lat, z_blocks=z), block


@torch.no_grad()
def block_report(G: Generator, samples: int, rng: torch.Generator, offset_scale: float = 1.0,
                 batch: int = 16) -> dict[str, float]:
    """Resample one grid block per image, and measure the change two ways from the same pairs:
    - distortion_out: mean squared change (pixels in [0, 1]) outside the block (SSN);
      locality: the same inside over outside;
    - inside_levels / outside_levels: mean absolute change in uint8 levels inside the block
      and beyond half a block around it, what a user sees; locality_levels: their ratio."""
    cfg = G.config
    sums = dict.fromkeys(("out", "in", "in_levels", "out_levels"), 0.0)
    for lat, resampled, block in block_pairs(G, samples, rng, batch):
        img0 = G(lat, offset_scale=offset_scale, noise_mode="const")
        img1 = G(resampled, offset_scale=offset_scale, noise_mode="const")
        change = ((img1 - img0) / 2).square().mean(dim=1, keepdim=True)  # pixels in [0, 1]
        outside = block_outside_mask(block, cfg.grid, change.shape[-1])
        sums["out"] += float(((change * outside).sum(dim=(1, 2, 3)) / outside.sum(dim=(1, 2, 3))).sum())
        sums["in"] += float(((change * (1 - outside)).sum(dim=(1, 2, 3)) / (1 - outside).sum(dim=(1, 2, 3))).sum())
        mean_in, mean_out = block_change_levels(img0, img1, block, cfg.grid)
        sums["in_levels"] += float(mean_in.sum())
        sums["out_levels"] += float(mean_out.sum())
    m = {k: v / samples for k, v in sums.items()}
    return {"distortion_out": m["out"], "locality": m["in"] / max(m["out"], 1e-12),
            "inside_levels": m["in_levels"], "outside_levels": m["out_levels"],
            "locality_levels": m["in_levels"] / max(m["out_levels"], 1e-6)}


def block_metrics(G: Generator, samples: int, rng: torch.Generator, offset_scale: float = 1.0,
                  batch: int = 16) -> tuple[float, float]:
    """(mean squared change outside the resampled block, inside change / outside change)."""
    report = block_report(G, samples, rng, offset_scale, batch)
    return report["distortion_out"], report["locality"]


@torch.no_grad()
def style_swap_locality(G: Generator, samples: int, rng: torch.Generator, offset_scale: float = 1.0,
                        batch: int = 16) -> float:
    """Change inside the object's heatmap region (H > e^-2, within 2 sigma) over outside."""
    cfg, device = G.config, G.const.device
    inside_sum, outside_sum = 0.0, 0.0
    for start in range(0, samples, batch):
        B = min(batch, samples - start)
        lat = G.sample_latents(B, rng, device)
        # style swaps are for generators with objects: sample_latents draws their centers and styles
        assert lat.centers is not None
        lat = replace(lat, centers=0.15 + 0.7 * torch.rand(lat.centers.shape, generator=rng).to(device))
        assert lat.z_objects is not None
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

