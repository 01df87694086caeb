"""Which level of the synthesis draws what: a generator's skip-architecture image at each
resolution, and what the finest level adds, for the same latents.

    python -m models.tools.level_sheet CKPT OUT.png [--levels R/4 R/2] [--samples 8] [--seed 11]

Rows: the image the synthesis has drawn by each of `levels` (Generator(stop_at=...),
nearest-upsampled to the full size, so each pixel of that level shows as a block), then
the full image, then twice what the finest level adds to the upsampled image below it
(grey = nothing). Session 20 found with it that rooms-cpu draws its furniture almost
entirely at 64 px (the 32 px image holds walls and floor and hardly a trace of the
objects), and figures-cpu its figure from 32 px (README, the eighteenth comparison).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F


@torch.no_grad()
def level_rows(G, levels: list[int], samples: int, seed: int) -> torch.Tensor:
    """[rows, samples, 3, R, R] in about [-1, 1]: each level's image, the full image, and
    twice the finest level's addition (its noise fixed: noise_mode const)."""
    R = G.config.resolution
    lat = G.sample_latents(samples, torch.Generator().manual_seed(seed), G.const.device)
    at = {s: G(lat, noise_mode="const", stop_at=s) for s in {*levels, R // 2, R}}  # each synthesis once
    rows = [F.interpolate(at[s], size=R, mode="nearest") for s in levels]
    below = F.interpolate(at[R // 2], size=R, mode="bilinear", align_corners=False)
    return torch.stack([*rows, at[R], (at[R] - below) * 2])


def main(argv: list[str] | None = None) -> int:
    from models.document.fileio import ExportError, write_image
    from models.io.checkpoint import CheckpointError, load_checkpoint

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("out", help="the sheet (.png)")
    p.add_argument("--levels", type=int, nargs="+",
                   help="resolutions to stop at (default: the two below the finest, 16 32 for a 64 px model)")
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--seed", type=int, default=11)
    args = p.parse_args(argv)
    try:
        G, _ = load_checkpoint(args.checkpoint)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    R = G.config.resolution
    args.levels = args.levels or [R // 4, R // 2]
    bad = [s for s in args.levels if s not in G.config.resolutions() or s >= R]
    if bad:
        print(f"error: --levels {bad}: this generator's levels below its {R} px are"
              f" {G.config.resolutions()[:-1]}", file=sys.stderr)
        return 2
    rows = level_rows(G.eval(), args.levels, args.samples, args.seed)
    sheet = torch.cat([torch.cat(list(row), dim=2) for row in rows], dim=1)  # [3, rows*R, samples*R]
    pixels = ((sheet.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    pixels = pixels.repeat(2, axis=0).repeat(2, axis=1)  # twice the size: a 64 px model's pixels show
    try:
        write_image(Path(args.out), pixels)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.out}: rows {', '.join(f'{s} px' for s in args.levels)}, {R} px, the {R} px level's addition x2")
    return 0


if __name__ == "__main__":
    sys.exit(main())
