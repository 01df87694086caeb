"""Gaussian heatmaps: the spatial handles of the generator.

Coordinates are normalised: (x, y) in [0, 1] across the image, x to the right, y down;
sigma is a fraction of the image side. Pixel centres sit at (i + 0.5) / size, so the
same center gives the same heatmap geometry at every resolution.
"""
from __future__ import annotations

import torch

from models.config import HIERARCHY_CENTERS, HIERARCHY_LEVELS, SKELETON_OFFSETS1, SKELETON_OFFSETS2

MIN_SIGMA = 1e-3  # below this an object is removed: its heatmap is exactly zero


def gaussian_heatmaps(centers: torch.Tensor, sigmas: torch.Tensor, size: int) -> torch.Tensor:
    """centers [B, n, 2] (x, y), sigmas [B, n] -> heatmaps [B, n, size, size] in [0, 1]."""
    coords = (torch.arange(size, device=centers.device, dtype=centers.dtype) + 0.5) / size
    dx = coords.view(1, 1, 1, size) - centers[..., 0, None, None]
    dy = coords.view(1, 1, size, 1) - centers[..., 1, None, None]
    s = sigmas.clamp_min(MIN_SIGMA)[..., None, None]
    h = torch.exp(-(dx * dx + dy * dy) / (2 * s * s))
    return h * (sigmas > MIN_SIGMA).to(h.dtype)[..., None, None]


def block_outside_mask(block: torch.Tensor, grid: int, size: int) -> torch.Tensor:
    """[B, 1, size, size]: 1 outside block `block[b]` (row-major index), 0 inside."""
    rows, cols = block // grid, block % grid
    coords = torch.arange(size, device=block.device) * grid // size  # pixel -> block row/col
    inside = (coords.view(1, size, 1) == rows.view(-1, 1, 1)) & (coords.view(1, 1, size) == cols.view(-1, 1, 1))
    return (~inside).float()[:, None]


def translate(maps: torch.Tensor, shift: torch.Tensor, padding_mode: str = "zeros") -> torch.Tensor:
    """maps [B, C, S, S] moved by shift [B, 2] (x, y in image units), bilinearly; what moves in
    from outside is zeros or (`padding_mode="border"`) the repeated border."""
    import torch.nn.functional as F

    size = maps.shape[-1]
    coords = (torch.arange(size, device=maps.device, dtype=torch.float32) + 0.5) / size
    gx = (coords.view(1, 1, size) - shift[:, 0].view(-1, 1, 1)) * 2 - 1
    gy = (coords.view(1, size, 1) - shift[:, 1].view(-1, 1, 1)) * 2 - 1
    grid = torch.stack([gx.expand(-1, size, size), gy.expand(-1, size, size)], dim=-1)
    return F.grid_sample(maps, grid.to(maps.dtype), mode="bilinear", padding_mode=padding_mode, align_corners=False)


def hierarchy_centers(root: torch.Tensor, offsets1: torch.Tensor, offsets2: torch.Tensor) -> list[torch.Tensor]:
    """Absolute centers per level from a root and offsets relative to each parent.

    root [B, 2]; offsets1 [B, 2, 2] (two children of the root); offsets2 [B, 4, 2]
    (children 0,1 of level-1 center 0, children 2,3 of level-1 center 1). Storing
    offsets relative to the parent is what makes finer centers move with the coarse one.
    """
    level0 = root[:, None, :]
    level1 = level0 + offsets1
    level2 = level1.repeat_interleave(2, dim=1) + offsets2
    return [level0, level1, level2]


def hierarchy_heatmaps(root: torch.Tensor, offsets1: torch.Tensor, offsets2: torch.Tensor,
                       sigma: torch.Tensor, size: int | None = None) -> list[torch.Tensor]:
    """Per-level heatmaps [B, 1, r, r] at r = 4, 8, 16 (or all at `size`): max over that
    level's centers.

    sigma [B] is the level-0 sigma; each finer level halves it (finer parts are smaller).
    """
    maps = []
    levels = hierarchy_centers(root, offsets1, offsets2)
    for level, (centers, level_size) in enumerate(zip(levels, HIERARCHY_LEVELS)):
        sig = (sigma / 2**level)[:, None].expand(-1, centers.shape[1])
        maps.append(gaussian_heatmaps(centers, sig, size or level_size).amax(dim=1, keepdim=True))
    return maps


# A bone's Gaussian width (its sigma across the segment), as a fraction of the root's sigma
# (0.2 by default: 0.017 of the image, about one pixel at 64 px), and at least this many
# pixels so that a coarse map keeps it.
BONE_WIDTH = 1 / 12
BONE_MIN_PIXELS = 0.6


def bone_distances(root: torch.Tensor, offsets1: torch.Tensor, offsets2: torch.Tensor, size: int) -> torch.Tensor:
    """[B, 6, size, size]: each pixel's squared distance (image units) to each of the skeleton's
    bones, the segments that join each center to its parent as hierarchy_centers places them:
    the spine and the thighs (the root to the upper body and to the knees), the arms (the
    upper body to the hands) and the shins (the knees to the feet), in that order;
    data.figures.skeleton_hierarchy says which center is which."""
    return bone_geometry(root, offsets1, offsets2, size)[1]


def bone_geometry(root: torch.Tensor, offsets1: torch.Tensor, offsets2: torch.Tensor,
                  size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """bone_distances' bones, each pixel's place along each: (t [B, 6, S, S] in [0, 1], 0 at the
    parent end, of the nearest point on the bone; that point's squared distance, image units)."""
    levels = hierarchy_centers(root, offsets1, offsets2)
    a = torch.cat([parent.repeat_interleave(child.shape[1] // parent.shape[1], dim=1)
                   for parent, child in zip(levels, levels[1:])], 1)  # [B, bones, 2]
    b = torch.cat(levels[1:], 1)
    coords = (torch.arange(size, device=root.device, dtype=root.dtype) + 0.5) / size
    px = coords.view(1, 1, 1, size).expand(-1, -1, size, -1)  # [1, 1, S, S] x
    py = coords.view(1, 1, size, 1).expand(-1, -1, -1, size)
    ab = (b - a)[..., None, None]  # [B, n, 2, 1, 1]
    ax, ay = a[..., 0, None, None], a[..., 1, None, None]
    length2 = (ab[:, :, 0] ** 2 + ab[:, :, 1] ** 2).clamp_min(1e-12)
    t = (((px - ax) * ab[:, :, 0] + (py - ay) * ab[:, :, 1]) / length2).clamp(0, 1)
    dx, dy = px - (ax + t * ab[:, :, 0]), py - (ay + t * ab[:, :, 1])
    return t, dx * dx + dy * dy


def bone_heatmaps(root: torch.Tensor, offsets1: torch.Tensor, offsets2: torch.Tensor,
                  sigma: torch.Tensor, size: int) -> torch.Tensor:
    """[B, 1, size, size] in [0, 1]: the skeleton's bones (bone_distances) as thin Gaussian
    capsules (a Gaussian of each pixel's distance to the nearest point of the segment), the
    max over bones."""
    width = (sigma * BONE_WIDTH).clamp_min(BONE_MIN_PIXELS / size)[:, None, None, None]
    return torch.exp(-bone_distances(root, offsets1, offsets2, size) / (2 * width * width)).amax(dim=1, keepdim=True)


# ---- sampling, as in the SpatialGAN paper (used by training and "new sample") -----------

def sample_object_centers(batch: int, n: int, generator: torch.Generator | None = None,
                          device: torch.device | str = "cpu") -> torch.Tensor:
    """Multi-object: centers ~ N(mean=(1/2, 1/2), std=(1/2, 1/2)) in image units, [B, n, 2]."""
    c = 0.5 + 0.5 * torch.randn(batch, n, 2, generator=generator)
    return c.to(device)


def sample_hierarchy(batch: int, generator: torch.Generator | None = None,
                     device: torch.device | str = "cpu",
                     layout_prior: str = "free") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Single-object. "free": root ~ N(1/2, 1/3); finer centers around their parent with std
    1/6. "skeleton": root ~ N(1/2, 1/6) kept inside [0.15, 0.85] (where the figures data puts
    it), offsets ~ N(mean, std) of figure skeletons (models.config.SKELETON_OFFSETS*).
    The same random draws either way."""
    root = torch.randn(batch, 2, generator=generator)
    off1 = torch.randn(batch, HIERARCHY_CENTERS[1], 2, generator=generator)
    off2 = torch.randn(batch, HIERARCHY_CENTERS[2], 2, generator=generator)
    if layout_prior == "skeleton":
        def place(noise: torch.Tensor, table) -> torch.Tensor:
            stats = torch.tensor(table, dtype=noise.dtype)  # [n, 2 (mean, std), 2 (x, y)]
            return stats[:, 0] + noise * stats[:, 1]

        root = (0.5 + root / 6).clamp(0.15, 0.85)
        off1, off2 = place(off1, SKELETON_OFFSETS1), place(off2, SKELETON_OFFSETS2)
    elif layout_prior == "free":
        root, off1, off2 = 0.5 + root / 3, off1 / 6, off2 / 6
    else:
        raise ValueError(f"layout_prior must be 'free' or 'skeleton', got {layout_prior!r}")
    return root.to(device), off1.to(device), off2.to(device)
