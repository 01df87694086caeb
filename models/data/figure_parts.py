"""Where a figure's parts must be, read off the 1-2-4 hierarchy that G is given: the regions
that training.parts asks a frozen part segmenter to see as each part (TrainConfig.limb_parts),
and that metrics.parts measures with a fresh one.

G knows only the hierarchy's points: the torso centre, the upper body (the mean of head and
shoulders), the knees' midpoint, the hands and the feet; not the elbows, the knees, nor the
head itself. So each part is asked for only where these points fix it whatever the pose
(RULES): the spine for the torso, the outer ends of the arm and shin bones for the arms and
legs, the upper body's end of the spine and a small disc beyond it for the head (the
renderer puts the head there at its mean tilt). tests/test_parts.py measures how often the
renderer's own part map agrees, on real skeletons.
"""
from __future__ import annotations

import torch

from models.data.figures import ARM, HEAD, LEG, TORSO
from models.nets.heatmaps import bone_geometry

# bone_geometry's bones, in its order: spine, root-to-knees, two arms, two shins.
SPINE, THIGHS, ARMS, SHINS = 0, 1, (2, 3), (4, 5)
# (bone, from t, to t, within pixels, part): the stretches of bone on which the renderer's own
# part map, on 512 real skeletons, is that part at least 65 % of the time (tests/test_parts.py;
# measured per tenth of each bone: the arms cover a third of the torso, the knees' midpoint
# is off the legs when they part, the straight hand bone leaves the bent arm until the wrist).
RULES = ((SPINE, 0.0, 0.6, 1.5, TORSO), (SPINE, 0.85, 1.0, 0.8, HEAD), (THIGHS, 0.0, 0.2, 1.5, TORSO),
         (THIGHS, 0.4, 0.8, 1.5, LEG), *((bone, 0.85, 1.0, 1.0, ARM) for bone in ARMS),
         *((bone, 0.7, 1.0, 1.5, LEG) for bone in SHINS))
# The head's centre beyond the upper body, as a fraction of the spine (root to upper body):
# the renderer's head is 0.51 spine lengths beyond it at the head's mean angle; its
# radius is 0.43 spine lengths, and the head turns up to 0.4 rad about the neck.
HEAD_BEYOND = 0.51
HEAD_RADIUS = 0.2  # asked to be head: well inside it whatever its turn
HEAD_ZONE = 0.75  # never asked to be background: the whole head at any turn (limb_segment asked it)


def part_regions(root: torch.Tensor, offsets1: torch.Tensor, offsets2: torch.Tensor, size: int,
                 geometry: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, list[int]]:
    """(regions [B, R, S, S] bool, the part each region must be, R entries from data.figures'
    HEAD..LEG): the pixels at which the hierarchy fixes a part whatever the pose. `geometry`:
    bone_geometry's (t, d2) of the same skeletons, where the caller has it already."""
    t, d2 = geometry if geometry is not None else bone_geometry(root, offsets1, offsets2, size)
    dist = d2.sqrt() * size  # pixels, [B, 6, S, S]
    regions = [(dist[:, bone] < within) & (t[:, bone] >= lo) & (t[:, bone] <= hi)
               for bone, lo, hi, within, _ in RULES]
    parts = [part for *_, part in RULES]
    regions.append(head_distance(root, offsets1, size) < HEAD_RADIUS)
    parts.append(HEAD)
    return torch.stack(regions, 1), parts


def head_distance(root: torch.Tensor, offsets1: torch.Tensor, size: int) -> torch.Tensor:
    """[B, S, S]: each pixel's distance from where the head's centre is expected, in spine
    lengths (the root to the upper body)."""
    spine = offsets1[:, 0]
    head = root + (1 + HEAD_BEYOND) * spine  # [B, 2]
    coords = (torch.arange(size, device=root.device, dtype=root.dtype) + 0.5) / size
    dx = coords.view(1, 1, size) - head[:, 0, None, None]
    dy = coords.view(1, size, 1) - head[:, 1, None, None]
    return (dx * dx + dy * dy).sqrt() / spine.norm(dim=-1).clamp_min(1e-6)[:, None, None]
