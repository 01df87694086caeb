"""G's loss that asks a frozen part segmenter to see each part of a figure where its
hierarchy fixes it (TrainConfig.limb_parts; the regions: data.figure_parts).

limb_segment asked the segmenter for "figure" along every bone, and the figures grew a head
and limbs of one rainbow stuff (session 24). A segmenter that tells head, torso, arm and leg
apart (train_backbone --parts, on data.figures' part map) can be asked for each where the
skeleton says it is.
"""
from __future__ import annotations

import torch

from models.data.figure_parts import HEAD_ZONE, head_distance, part_regions
from models.data.figures import PARTS
from models.nets.heatmaps import bone_geometry
from models.training.losses import limb_terms


def part_segment_loss(log_probs: torch.Tensor, root: torch.Tensor, offsets1: torch.Tensor,
                      offsets2: torch.Tensor) -> torch.Tensor:
    """G's side of a frozen part segmenter's verdict ([B, 1 + len(PARTS), S, S] log-probabilities,
    background first): each region of part_regions must be its part, every bone (as
    limb_segment asks) some part of the figure, and background far from all bones. Each region,
    each bone and the background weigh the same, so a 2 px forearm counts as much as the torso."""
    if log_probs.shape[1] != 1 + len(PARTS):
        raise ValueError(f"a part segmenter gives {1 + len(PARTS)} classes (background, {', '.join(PARTS)}),"
                         f" got {log_probs.shape[1]}")
    size = log_probs.shape[-1]
    geometry = bone_geometry(root, offsets1, offsets2, size)  # once: the regions and the bones' terms share it
    regions, parts = part_regions(root, offsets1, offsets2, size, geometry)
    terms = []
    for i, part in enumerate(parts):
        on = regions[:, i].to(log_probs.dtype)
        if on.sum() > 0:
            terms.append((-(log_probs[:, part] * on).sum() / on.sum())[None])
    # and as limb_segment: some part along every bone, background far from them but at the head
    figure = torch.logsumexp(log_probs[:, 1:], dim=1)  # [B, S, S]: any part
    spared = head_distance(root, offsets1, size) <= HEAD_ZONE
    terms += limb_terms(figure, log_probs[:, 0], geometry[1], spared)
    joined = torch.cat(terms)
    return joined.mean() if joined.numel() else log_probs.new_zeros(())
