"""Tracked co-move: does the *same* object arrive where its handle was moved, and does the
rest of the picture stay as it was? Measured on pixels, as a user sees it.

The co-move ratio (steering.py) asks the probe whether an object *of that class* is near
the new center, so a generator that restyles the moved object, or redraws the whole room
on every move, still scores well. Here the content itself is followed:

1. Cut the before-image around the object's old center (a square patch, weighted by a
   Gaussian so that the object's middle counts most).
2. Search the after-image for it (weighted sum of squared differences at every pixel
   position of a disc that covers both the old and the new place, the same disc for
   every model: a search that followed the handle would credit a generator that ignores
   it).
3. A move *finds the object* when the best match lies within `TOLERANCE` × |move| of the
   new place and explains most of the patch (residual ≤ `MAX_RESIDUAL` of the patch's own
   variance: a restyled object does not).
4. A move *succeeds* when the object is found and the image outside the old and new
   footprints (discs of `FOOTPRINT` around both centers) changed by at most
   `MAX_OUTSIDE_LEVELS` uint8 levels on average: a generator that redraws the room does not.

`co_move_tracked` is the fraction of successful moves. The same seeded moves applied to
the procedural renderer (RoomParams.moved: only the object moves) give
`co_move_tracked_ceiling`, what the metric reaches on real data. For a hierarchical
generator (one figure) the root is moved, carrying the finer centers, the footprints are
`FIGURE_FOOTPRINT` (the limbs move too), and the ceiling comes from the figures renderer
with the torso centre moved.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from models.metrics.steering import random_moves
from models.nets.generator import Generator

PATCH_RADIUS = 0.1  # image units: half the side of the patch cut around the old center
PATCH_SIGMA = 0.045  # the Gaussian weight of the patch: the object's middle counts most
SEARCH_MARGIN = 0.15  # the search disc reaches this far beyond both centers
TOLERANCE = 0.3  # found when the match is within this fraction of the move of the new place
MAX_RESIDUAL = 0.8  # ... and its weighted squared error is at most this fraction of the patch's variance
FOOTPRINT = 0.15  # image units: disc around the old and the new center where change is expected
# A figure (hierarchical generators: the root is moved and carries its parts) reaches far
# beyond its torso: its limbs move with it, so change is expected within this of the root.
FIGURE_FOOTPRINT = 0.3
MAX_OUTSIDE_LEVELS = 6.0  # mean change outside both footprints allowed for a success (uint8 levels)
VARIANCE_FLOOR = 0.02 ** 2  # a flat patch is matched against this variance, not against ~0


@dataclass
class TrackedMoves:
    """Per move: where the before-patch was found in the after-image, and how well."""

    found_shift: torch.Tensor  # [B, 2] displacement of the best match (image units)
    residual: torch.Tensor  # [B] weighted squared error at the best match / the patch's variance
    found: torch.Tensor  # [B] bool: best match at the new place and residual small enough
    outside_levels: torch.Tensor  # [B] mean |after - before| outside both footprints, uint8 levels
    success: torch.Tensor  # [B] bool: found and the rest of the image stayed


def _to_unit(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], rounded to uint8 levels as a user sees the image."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round() / 255


def _disc_mask(centers: torch.Tensor, radius: torch.Tensor | float, size: int) -> torch.Tensor:
    """[B, S, S] pixels whose centers lie within radius (image units) of centers [B, 2]."""
    coords = (torch.arange(size, device=centers.device, dtype=torch.float32) + 0.5) / size
    dx = coords.view(1, 1, size) - centers[:, 0].view(-1, 1, 1)
    dy = coords.view(1, size, 1) - centers[:, 1].view(-1, 1, 1)
    radius = torch.as_tensor(radius, dtype=torch.float32, device=centers.device).expand(len(centers))
    return (dx * dx + dy * dy) <= radius.view(-1, 1, 1) ** 2


def outside_change_levels(before: torch.Tensor, after: torch.Tensor, old: torch.Tensor,
                          new: torch.Tensor, footprint: float = FOOTPRINT) -> torch.Tensor:
    """[B] mean absolute change (uint8 levels, all channels) outside discs around old and new."""
    size = before.shape[-1]
    outside = ~(_disc_mask(old, footprint, size) | _disc_mask(new, footprint, size))
    change = (_to_unit(after) - _to_unit(before)).abs().mean(dim=1) * 255
    return (change * outside).sum(dim=(1, 2)) / outside.sum(dim=(1, 2)).clamp_min(1)


def track_moves(before: torch.Tensor, after: torch.Tensor, centers: torch.Tensor,
                deltas: torch.Tensor, footprint: float = FOOTPRINT) -> TrackedMoves:
    """Follow the content at `centers` [B, 2] in `before` to `after` (images [B, 3, S, S] in
    [-1, 1]); each was asked to move by `deltas` [B, 2] (image units)."""
    if before.shape != after.shape or before.dim() != 4 or before.shape[1] != 3:
        raise ValueError(f"before and after must both be [B, 3, S, S]; got {tuple(before.shape)}"
                         f" and {tuple(after.shape)}")
    B, _, S, _ = before.shape
    device = before.device
    a, b = _to_unit(before), _to_unit(after)
    r = max(1, round(PATCH_RADIUS * S))
    k = 2 * r + 1
    offs = torch.arange(-r, r + 1, device=device, dtype=torch.float32)
    w = torch.exp(-(offs.view(-1, 1) ** 2 + offs.view(1, -1) ** 2) / (2 * (PATCH_SIGMA * S) ** 2))
    w = w / w.sum()  # [k, k], sums to 1 (per channel)
    # The template: the patch centered on the pixel that holds the old center.
    pix = (centers * S).floor().long().clamp(r, S - 1 - r)  # [B, 2] (x, y)
    padded = F.pad(a, (r, r, r, r))
    rows = (pix[:, 1].view(-1, 1) + offs.long().view(1, -1) + r)  # [B, k] in padded coords
    cols = (pix[:, 0].view(-1, 1) + offs.long().view(1, -1) + r)
    idx = torch.arange(B, device=device)
    template = padded[idx.view(-1, 1, 1, 1), torch.arange(3, device=device).view(1, 3, 1, 1),
                      rows.view(B, 1, k, 1), cols.view(B, 1, 1, k)]  # [B, 3, k, k]
    t_mean = (template * w).sum(dim=(2, 3), keepdim=True)
    t_var = ((template - t_mean).square() * w).sum(dim=(1, 2, 3)).clamp_min(VARIANCE_FLOOR)  # summed over channels
    # Weighted SSD at every position, by convolution: sum w (A - T)^2 = w*A^2 - 2 (wT)*A + sum w T^2.
    x = b.reshape(1, B * 3, S, S)
    w_each = w.expand(B * 3, 1, k, k)
    a2 = F.conv2d(x.square(), w_each, padding=r, groups=B * 3).view(B, 3, S, S).sum(1)
    cross = F.conv2d(x, (template * w).reshape(B * 3, 1, k, k), padding=r, groups=B * 3).view(B, 3, S, S).sum(1)
    ssd = a2 - 2 * cross + (template.square() * w).sum(dim=(1, 2, 3)).view(B, 1, 1)
    # Only where the whole patch lies inside the image, inside the search disc.
    search = _disc_mask(centers + deltas / 2, deltas.norm(dim=1) / 2 + SEARCH_MARGIN, S)
    inner = torch.zeros(S, S, dtype=torch.bool, device=device)
    inner[r:S - r, r:S - r] = True
    ssd = torch.where(search & inner, ssd, torch.full_like(ssd, float("inf")))
    best = ssd.flatten(1).argmin(dim=1)
    by, bx = best // S, best % S
    found_shift = torch.stack([bx - pix[:, 0], by - pix[:, 1]], 1).float() / S
    residual = ssd.flatten(1)[idx, best].clamp_min(0) / t_var
    error = (found_shift - deltas).norm(dim=1)
    found = (error <= TOLERANCE * deltas.norm(dim=1)) & (residual <= MAX_RESIDUAL)
    outside = outside_change_levels(before, after, centers, centers + deltas, footprint)
    return TrackedMoves(found_shift, residual, found, outside, found & (outside <= MAX_OUTSIDE_LEVELS))


def summarise(moves: list[TrackedMoves]) -> dict[str, float]:
    found = torch.cat([m.found for m in moves]).float()
    success = torch.cat([m.success for m in moves]).float()
    outside = torch.cat([m.outside_levels for m in moves])
    return {"tracked": float(success.mean()), "found": float(found.mean()), "outside_levels": float(outside.mean())}


def fixed_moves(samples: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The moves every model (and the renderer) gets: start centers and displacements [N, 2]."""
    return random_moves(samples, torch.Generator().manual_seed(seed * 1000 + 11))


def move_pairs(G: Generator, samples: int, seed: int = 0, batch: int = 16):
    """The fixed moves as latents, a batch at a time: yields (before, after, centers, deltas).
    One object's heatmap center moves (the others inside the frame too, as in the co-move
    ratio); for a hierarchical generator the root moves, carrying the finer centers. The
    one source of tracked co-move's moves (models/tools/leak_profile.py replays them)."""
    cfg, device = G.config, G.const.device
    if not (cfg.objects or cfg.hierarchical):
        raise ValueError("tracked co-move needs a generator with objects or hierarchical heatmaps (centers to move)")
    starts, deltas = fixed_moves(samples, seed)
    rng = torch.Generator().manual_seed(seed * 1000 + 12)
    for lo in range(0, samples, batch):
        B = min(batch, samples - lo)
        centers, delta = starts[lo:lo + B].to(device), deltas[lo:lo + B].to(device)
        lat = G.sample_latents(B, rng, device)
        if not cfg.objects:  # the figure: its root moves, its parts (relative to it) follow
            yield replace(lat, root=centers), replace(lat, root=centers + delta), centers, delta
            continue
        assert lat.centers is not None  # a generator with objects (checked above): sample_latents draws centers
        which = torch.randint(cfg.objects, (B,), generator=rng).to(device)
        idx = torch.arange(B, device=device)
        c_before = (0.15 + 0.7 * torch.rand(lat.centers.shape, generator=rng)).to(device)
        c_before[idx, which] = centers
        c_after = c_before.clone()
        c_after[idx, which] = centers + delta
        yield replace(lat, centers=c_before), replace(lat, centers=c_after), centers, delta


@torch.no_grad()
def generator_move_images(G: Generator, samples: int, seed: int = 0, offset_scale: float = 1.0, batch: int = 16):
    """G's pictures before and after each fixed move: yields (before, after, centers, deltas)."""
    for before, after, centers, delta in move_pairs(G, samples, seed, batch):
        yield (G(before, offset_scale=offset_scale, noise_mode="const"),
               G(after, offset_scale=offset_scale, noise_mode="const"), centers, delta)


@torch.no_grad()
def renderer_move_images(size: int, samples: int, seed: int = 0, n_objects: int = 3, batch: int = 64,
                         figures: bool = False):
    """The same fixed moves on the procedural rooms renderer: one present object is placed at
    the start center and moved (RoomParams.moved), nothing else changes. `figures`: on the
    figures renderer, the figure's torso centre placed and moved. Yields as
    `generator_move_images`."""
    from models.data.figures import render_figures, sample_figures
    from models.data.rooms import render_rooms, sample_rooms

    def rooms(B: int, centers: torch.Tensor, delta: torch.Tensor, rng: torch.Generator):
        params = sample_rooms(B, n_objects, rng)
        # a random present object: argmax of random keys, masked to the present slots
        which = (torch.rand(params.present.shape, generator=rng) + params.present.float()).argmax(dim=1)
        center = params.center.clone()
        center[torch.arange(B), which] = centers
        params = replace(params, center=center)
        return render_rooms(params, size).images, render_rooms(params.moved(which, delta), size).images

    def figure(B: int, centers: torch.Tensor, delta: torch.Tensor, rng: torch.Generator):
        params = replace(sample_figures(B, rng), root=centers)
        return render_figures(params, size).images, render_figures(replace(params, root=centers + delta), size).images

    # (rng salts 13 and 14: each renderer keeps its own draws)
    render_pair, salt = (figure, 14) if figures else (rooms, 13)
    starts, deltas = fixed_moves(samples, seed)
    rng = torch.Generator().manual_seed(seed * 1000 + salt)
    for lo in range(0, samples, batch):
        B = min(batch, samples - lo)
        centers, delta = starts[lo:lo + B], deltas[lo:lo + B]
        img0, img1 = render_pair(B, centers, delta, rng)
        yield img0, img1, centers, delta


def tracked_co_move(G: Generator, samples: int, seed: int = 0, offset_scale: float = 1.0,
                    batch: int = 16) -> dict[str, float]:
    """Move one object's heatmap center of G by the fixed moves (a hierarchical generator's
    root, which carries the finer centers); see the module doc.
    -> {"tracked", "found", "outside_levels"}."""
    footprint = FOOTPRINT if G.config.objects else FIGURE_FOOTPRINT
    return summarise([track_moves(img0, img1, c, d, footprint)
                      for img0, img1, c, d in generator_move_images(G, samples, seed, offset_scale, batch)])


def tracked_co_move_ceiling(size: int, samples: int, seed: int = 0, n_objects: int = 3,
                            batch: int = 64, figures: bool = False) -> dict[str, float]:
    """`tracked_co_move` of the procedural renderer (`renderer_move_images`): the ceiling."""
    footprint = FIGURE_FOOTPRINT if figures else FOOTPRINT
    return summarise([track_moves(img0, img1, c, d, footprint)
                      for img0, img1, c, d in renderer_move_images(size, samples, seed, n_objects, batch, figures)])
