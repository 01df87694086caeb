"""Colour spread: do the generated scenes vary in colour as much as the real ones do?

Issue 23's projected discriminators let every wall drift to one grey-lavender and every
floor to one brown while each picture on its own looked plausible; neither the realism
classifier (one image at a time) nor the probe's FD (features trained to segment, nearly
blind to a wall's colour) says so plainly. This does: each image is area-averaged to a 4x4
grid of colours (a wall, a floor, a corner each), and the spread is the standard deviation
over the images of each cell's colour, averaged over cells and channels, in [0, 1] units.
Real rooms at 64 px: 0.13 (256 images); the StyleGAN2 recipe at 27k images 0.12, the
projected variants of issue 23 0.06-0.09 (README, "Recipes"). Reported
beside the real images' own spread (`colour_spread_real`), measured on as many images.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

GRID = 4


def colour_cells(images: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] in [-1, 1] -> [N, 3 x GRID x GRID]: each cell's mean colour, in [0, 1] units
    about the middle grey (a layout channel beyond the third is ignored)."""
    return (F.adaptive_avg_pool2d(images.float()[:, :3], GRID) * 0.5).flatten(1)


def colour_spread(images: torch.Tensor) -> float:
    """`images` [N, 3, H, W] in [-1, 1] (N >= 2): the mean over 4x4 cells and channels of the
    standard deviation over images of the cell's mean colour, in [0, 1] units."""
    if images.dim() != 4 or images.shape[0] < 2:
        raise ValueError(f"colour_spread needs [N >= 2, C, H, W] images, got {list(images.shape)}")
    return float(colour_cells(images).std(dim=0).mean())


def main(argv: list[str] | None = None) -> int:
    """`python -m models.metrics.colour CKPT [CKPT ...]`: each checkpoint's colour spread and
    the real images', drawn with `steergan eval`'s seeds (its `colour_spread` and
    `colour_spread_real` at --realism-samples N), without the rest of eval."""
    import argparse

    from models.data import make_dataset
    from models.io.checkpoint import CheckpointError, load_checkpoint
    from models.metrics.evaluate import generated_images, real_dataset_name, real_images

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--samples", type=int, default=256, help="images a side (eval's --realism-samples)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    reals: dict[tuple[str, int], float] = {}
    for path in args.checkpoints:
        try:
            G, _ = load_checkpoint(path)
        except CheckpointError as exc:
            print(f"{path}: {exc}")
            return 2
        G.eval()
        key = (real_dataset_name(G), G.config.resolution)
        if key not in reals:
            data = make_dataset(key[0], key[1], "cpu", n_objects=max(1, G.config.objects))
            reals[key] = colour_spread(real_images(data, args.samples, torch.Generator().manual_seed(args.seed + 2)))
        fake = generated_images(G, args.samples, torch.Generator().manual_seed(args.seed * 1000 + 5))
        print(f"{path}: colour spread {colour_spread(fake):.4f} (real {key[0]} at {key[1]} px: {reals[key]:.4f})",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
