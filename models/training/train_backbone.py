"""Train the projected discriminator's frozen backbone on the procedural data:
`python -m models.training.train_backbone [--minutes 8]`.

Segmentation of rooms and figures at 64 px (the probe's classes), class-balanced, seed 1.
Trained once and shipped; never the metrics probe (see models/nets/projected.py).
With --parts: the same network segmenting the figures' parts (background, head, torso, arm,
leg; data.figures' part map), on figures only, seed 2: limb_parts' judge (training.parts)."""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from models.io.backbone_file import DEFAULT_BACKBONE, DEFAULT_PARTS_BACKBONE, save_backbone
from models.metrics.probe import label_maps, probe_classes
from models.nets.projected import BACKBONE_SIZE, FeatureBackbone
from models.training.losses import class_balance


def train_backbone(minutes: float | None = None, steps: int | None = None, batch: int = 32, seed: int = 1,
                   log=print, parts: bool = False) -> tuple[FeatureBackbone, dict]:
    from models.data import make_dataset
    from models.data.figures import PARTS

    classes = ["background", *PARTS] if parts else probe_classes()
    torch.manual_seed(seed)
    net = FeatureBackbone(classes)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    rng = torch.Generator().manual_seed(seed)
    rooms, figures = make_dataset("rooms", BACKBONE_SIZE, "cpu"), make_dataset("figures", BACKBONE_SIZE, "cpu")
    start, step, loss = time.time(), 0, torch.zeros(())
    while (minutes is None or time.time() - start < minutes * 60) and (steps is None or step < steps):
        images, targets = [], []
        if parts:  # the figures' part map, a whole batch of figures
            b = figures.sample(batch, rng)
            assert b.parts is not None  # render_figures always draws it
            images.append(b.images)
            targets.append(b.parts)
        else:
            for data, is_fig in ((rooms, False), (figures, True)):
                b = data.sample(batch // 2, rng)
                images.append(b.images)
                targets.append(label_maps(b, is_fig, classes))
        target = torch.cat(targets)
        # Class balancing (as OASIS weighs its classes): small objects count as much as the wall.
        loss = F.cross_entropy(net.segment(torch.cat(images)), target, weight=class_balance(target, len(classes)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 25 == 0:
            log(f"backbone step {step}: loss {loss.item():.4f} ({time.time() - start:.0f} s)")
    info = {"steps": step, "batch": batch, "seed": seed, "parts": parts, "seconds": round(time.time() - start, 1),
            "final_loss": round(loss.item(), 4)}
    return net.eval().requires_grad_(False), info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--parts", action="store_true", help="segment the figures' parts (limb_parts' judge)")
    parser.add_argument("--out", help=f"default {DEFAULT_BACKBONE} ({DEFAULT_PARTS_BACKBONE} with --parts)")
    args = parser.parse_args()
    args.out = args.out or str(DEFAULT_PARTS_BACKBONE if args.parts else DEFAULT_BACKBONE)
    net, info = train_backbone(args.minutes, seed=2 if args.parts else 1, parts=args.parts)
    save_backbone(args.out, net, info)
    print(f"saved {args.out}: {info}")


if __name__ == "__main__":
    main()
