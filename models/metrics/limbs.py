"""Does a figures generator draw its arms? The share of the pixels along the outer part of each
arm of the skeleton it was given that the metrics probe segments as the figure, against the
same on real figures (the ceiling).

The probe, not the projected D's backbone: `TrainConfig.limb_segment` trains G against that
backbone's verdict, so a measure on it would reward fooling it (Kynkäänniemi et al. 2023).
Only the outer part of an arm counts (from OUTER of its length on): near the shoulder the
torso's pixels answer for it. The bones are straight lines from the upper body to the hand,
so a bent elbow puts a real arm partly off its line: the real figures' share is the ceiling,
not 1. `python -m models.metrics.limbs CKPT [CKPT ...]` prints it per checkpoint.
"""
from __future__ import annotations

import sys

import torch

from models.nets.heatmaps import bone_distances, hierarchy_centers

OUTER = 0.6  # an arm's pixels from this fraction of its length on
NEAR_PIXELS = 1.5  # a pixel this close to the line is on it (a 64 px arm is 2-3 px wide)
ARM_BONES = (2, 3)  # heatmaps.bone_distances' order: spine, thighs, two arms, two shins


def outer_arm_pixels(root: torch.Tensor, offsets1: torch.Tensor, offsets2: torch.Tensor, size: int) -> torch.Tensor:
    """[B, size, size] bool: the pixels near the outer part of either arm's line."""
    d2 = bone_distances(root, offsets1, offsets2, size)[:, list(ARM_BONES)]  # [B, 2, S, S]
    levels = hierarchy_centers(root, offsets1, offsets2)
    shoulder, hands = levels[1][:, :1], levels[2][:, :2]  # the upper body; the two hands
    coords = (torch.arange(size, device=root.device, dtype=root.dtype) + 0.5) / size
    px, py = coords.view(1, 1, 1, size), coords.view(1, 1, size, 1)
    to_pixel2 = (px - shoulder[..., 0, None, None]) ** 2 + (py - shoulder[..., 1, None, None]) ** 2
    length2 = ((hands - shoulder) ** 2).sum(-1)[..., None, None]  # [B, 2, 1, 1]
    near = d2.sqrt() * size < NEAR_PIXELS
    return (near & (to_pixel2 >= OUTER ** 2 * length2)).any(dim=1)


def figure_share(probe, images: torch.Tensor, where: torch.Tensor) -> float:
    """The mean probability the probe gives the figure class at the `where` pixels [B, S, S]."""
    from models.metrics.probe import FIGURE_CLASS_NAME

    logits, _ = probe(images)
    p = logits.float().softmax(dim=1)[:, probe.classes.index(FIGURE_CLASS_NAME)]
    if p.shape[-1] != where.shape[-1]:
        raise ValueError(f"the probe segments at {p.shape[-1]} px, the arms were placed at {where.shape[-1]} px")
    return float(p[where].mean()) if where.any() else float("nan")


@torch.no_grad()
def arm_coverage(G, probe, samples: int = 256, seed: int = 0, batch: int = 32) -> dict[str, float]:
    """{"arms": the generator's share, "arms_real": real figures' share} over `samples` images:
    G draws each real figure's skeleton (read off its keypoints, as the layout-conditional
    trainer gives it), so both sides are measured on the same arms."""
    from models.data import make_dataset
    from models.data.figures import skeleton_hierarchy

    if not G.config.hierarchical:
        raise ValueError("arm coverage needs a figures generator (hierarchical heatmaps)")
    data = make_dataset("figures", G.config.resolution, G.const.device)
    rng = torch.Generator().manual_seed(seed)  # the real skeletons: the same for every generator
    lat_rng = torch.Generator().manual_seed(seed + 7)  # G's own draws, apart (as kinds and parts)
    size = 64  # the probe segments at 64 px
    fake_sum = real_sum = 0.0
    count = 0
    for lo in range(0, samples, batch):
        n = min(batch, samples - lo)
        real = data.sample(n, rng)
        assert real.keypoints is not None  # the figures dataset has skeletons
        lat = G.sample_latents(n, lat_rng, G.const.device)
        lat.root, lat.offsets1, lat.offsets2 = skeleton_hierarchy(real.keypoints)
        where = outer_arm_pixels(lat.root.float().cpu(), lat.offsets1.float().cpu(), lat.offsets2.float().cpu(), size)
        fake = G(lat, noise_mode="const").float().cpu()
        fake_sum += figure_share(probe, fake, where) * n
        real_sum += figure_share(probe, real.images.float().cpu(), where) * n
        count += n
    return {"arms": fake_sum / count, "arms_real": real_sum / count}


def main(argv: list[str] | None = None) -> int:
    from models.metrics.per_checkpoint import per_checkpoint_main
    from models.metrics.probe import DEFAULT_PROBE, load_probe

    probe, _ = load_probe(DEFAULT_PROBE)
    return per_checkpoint_main(argv, __doc__.splitlines()[0], "limbs",
                               lambda G, samples: arm_coverage(G, probe, samples))


if __name__ == "__main__":
    sys.exit(main())
