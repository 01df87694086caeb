"""Does a figures generator draw each part where its skeleton puts it? A fresh small segmenter
learns the parts (head, torso, arm, leg: data.figures' part map) from real figures, then
segments the figures G draws at held-out real skeletons: `part_accuracy`, the share of the
pixels at which the hierarchy fixes a part (data.figure_parts.part_regions) that it segments as
that part, each part weighing the same. The same on the held-out real figures is the ceiling
(`part_accuracy_real`: the regions are where a part is most of the time, not always).

A fresh network, as the realism test's and the kinds metric's, with an architecture of its
own: TrainConfig.limb_parts trains G against the part segmenter in checkpoints/
parts_backbone.safetensors, so a measure on that one would reward fooling it (Kynkäänniemi
et al. 2023). `python -m models.metrics.parts CKPT [CKPT ...]` prints it per checkpoint.
"""
from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
from torch import nn

SIZE = 64  # the figures are segmented at this size


def _segmenter(classes: int) -> nn.Module:
    """Half resolution, dilated (a receptive field of about 30 px: a head is told from a hand
    by what is around it), then back to full size."""
    def conv(cin: int, cout: int, dilation: int = 1, stride: int = 1) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation), nn.LeakyReLU(0.2)]

    return nn.Sequential(*conv(3, 32, stride=2), *conv(32, 32, 2), *conv(32, 32, 4), *conv(32, 32, 2),
                         nn.Conv2d(32, classes, 1), nn.Upsample(scale_factor=2, mode="bilinear"))


def train_segmenter(images: torch.Tensor, parts: torch.Tensor, seed: int = 0, epochs: int = 6, batch: int = 32,
                    lr: float = 2e-3) -> nn.Module:
    """A fresh segmenter of the real figures' parts (realism.train_fresh, not flipped: the
    targets are per pixel), each class weighing the same over the set (the background is 93 %
    of pixels; at most 10x)."""
    from models.data.figures import PARTS
    from models.metrics.realism import train_fresh

    classes = 1 + len(PARTS)
    counts = torch.bincount(parts.flatten(), minlength=classes).float()
    weight = (counts.sum() / (counts.clamp_min(1) * classes)).clamp(max=10.0)  # over the whole training set
    return train_fresh(lambda: _segmenter(classes), images,
                       lambda out, pick: F.cross_entropy(out, parts[pick], weight=weight),
                       seed, epochs, batch, lr, flip=False)


def region_accuracy(segmenter: nn.Module, images: torch.Tensor, regions: torch.Tensor,
                    parts: list[int]) -> dict[int, tuple[int, int]]:
    """{part: (pixels segmented as it, pixels asked)} over the regions [B, R, S, S] of `images`."""
    named = segmenter(images.float()).argmax(dim=1)  # [B, S, S]
    out: dict[int, tuple[int, int]] = {}
    for i, part in enumerate(parts):
        on = regions[:, i]
        hit, asked = out.get(part, (0, 0))
        out[part] = (hit + int((named[on] == part).sum()), asked + int(on.sum()))
    return out


@torch.no_grad()
def part_accuracy(G, samples: int = 256, seed: int = 0, train_images: int = 2048,
                  batch: int = 32) -> dict[str, float]:
    """{"part_accuracy", "part_accuracy_real", and per part "head"... (G's share) and "head_real"...}: the fresh
    segmenter, trained on `train_images` real figures, on `samples` held-out real skeletons."""
    from models.data import make_dataset
    from models.data.figure_parts import part_regions
    from models.data.figures import PARTS, skeleton_hierarchy

    if not G.config.hierarchical or G.config.time is not None:
        raise ValueError("part accuracy needs a figures generator of still images (hierarchical heatmaps)")
    data = make_dataset("figures", SIZE, "cpu")
    real = data.sample(train_images, torch.Generator().manual_seed(seed + 101))
    assert real.parts is not None  # render_figures draws the part map
    segmenter = train_segmenter(real.images, real.parts, seed)
    rng = torch.Generator().manual_seed(seed)  # the real skeletons: the same for every generator
    lat_rng = torch.Generator().manual_seed(seed + 7)
    counts: dict[str, dict[int, tuple[int, int]]] = {"fake": {}, "real": {}}
    for lo in range(0, samples, batch):
        real = data.sample(min(batch, samples - lo), rng)
        assert real.keypoints is not None
        hierarchy = skeleton_hierarchy(real.keypoints)
        lat = G.sample_latents(real.images.shape[0], lat_rng, G.const.device)
        lat.root, lat.offsets1, lat.offsets2 = (h.to(G.const.device) for h in hierarchy)
        fake = G(lat, noise_mode="const").float().cpu()
        if fake.shape[-1] != SIZE:
            fake = F.interpolate(fake, size=(SIZE, SIZE), mode="bilinear", align_corners=False, antialias=True)
        regions, parts = part_regions(*hierarchy, SIZE)
        for side, images in (("fake", fake), ("real", real.images)):
            for part, (hit, asked) in region_accuracy(segmenter, images, regions, parts).items():
                h0, a0 = counts[side].get(part, (0, 0))
                counts[side][part] = (h0 + hit, a0 + asked)

    def share(side: str, part: int) -> float:
        hit, asked = counts[side][part]
        return hit / max(1, asked)

    report = {name + suffix: share(side, i + 1) for side, suffix in (("fake", ""), ("real", "_real"))
              for i, name in enumerate(PARTS)}
    for side, key in (("fake", "part_accuracy"), ("real", "part_accuracy_real")):
        report[key] = sum(share(side, i + 1) for i in range(len(PARTS))) / len(PARTS)
    return report


def main(argv: list[str] | None = None) -> int:
    from models.metrics.per_checkpoint import per_checkpoint_main

    return per_checkpoint_main(argv, __doc__.splitlines()[0], "parts", part_accuracy)


if __name__ == "__main__":
    sys.exit(main())
