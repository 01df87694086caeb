"""Contact sheets of the procedural data sets, to look at: `python -m models.data.preview`.

Writes a 4 x 4 grid of samples per data set (PNG) so a person can check that rooms look
like rooms and figures like people after a change to a renderer.
"""
from __future__ import annotations

import argparse

import torch
from PIL import Image

from models.data import make_dataset


def grid_image(images: torch.Tensor, columns: int = 4) -> Image.Image:
    """[N, 3, S, S] in [-1, 1] -> one PIL image with `columns` samples per row."""
    n, _, s, _ = images.shape
    rows = -(-n // columns)
    pad = torch.zeros(rows * columns - n, 3, s, s, dtype=images.dtype, device=images.device) - 1
    pixels = ((torch.cat([images, pad]) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu()
    sheet = pixels.view(rows, columns, 3, s, s).permute(0, 3, 1, 4, 2).reshape(rows * s, columns * s, 3)
    return Image.fromarray(sheet.numpy())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="/tmp/data_preview_{name}.png", help="{name} is the data set")
    args = parser.parse_args(argv)
    for name in ("rooms", "figures"):
        batch = make_dataset(name, args.size).sample(16, torch.Generator().manual_seed(args.seed))
        path = args.out.format(name=name)
        grid_image(batch.images).save(path)
        print(path)


if __name__ == "__main__":
    main()
