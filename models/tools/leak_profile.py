"""Where does an edit leak into the rest of the picture? For a trained generator with objects
and a grid, apply a move (tracked co-move's fixed moves) or a block resampling (the block
report's) only to the layers at or above R px, the coarser layers keeping the picture as it
was, and measure what changes inside and outside, as the metrics do:

    python -m models.tools.leak_profile checkpoints/rooms-cpu.safetensors --samples 64

A row "from 16 px" with little change outside says that the 4 and 8 px layers carry the
leak (README, the eleventh comparison: an architecture whose objects enter from 16 px,
`GeneratorConfig.objects_from`, follows from it). Diagnostic only: nothing here trains.
"""
from __future__ import annotations

import argparse
from contextlib import contextmanager

import torch

from models.metrics.steering import block_change_levels, block_pairs
from models.metrics.tracked import move_pairs, summarise, track_moves
from models.nets.generator import Generator, Latents
from models.nets.heatmaps import gaussian_heatmaps

NEVER = 10_000  # "from" a resolution above any: the edit reaches no layer


@contextmanager
def edit_only_from(G: Generator, before: Latents, resolution: int):
    """Within the block, G renders its input latents with the object centers and the style
    fields of `before` at every size below `resolution` (their sprites too): the edit reaches only the layers at
    or above it. (Wraps the instance's two spatial inputs; restored on exit.)"""
    own_fields = G._w_fields
    old_fields = own_fields(before, 1.0)

    def fields(lat: Latents, psi, w_obj=None):
        return {s: (v if s >= resolution else old_fields[s]) for s, v in own_fields(lat, psi, w_obj).items()}

    def heat(lat: Latents, size: int) -> torch.Tensor:
        source = lat if size >= resolution else before
        return gaussian_heatmaps(source.need("centers"), source.need("sigmas"), size)

    def places(lat: Latents, size: int) -> tuple[torch.Tensor, torch.Tensor]:  # the sprites' (nets/sprites.py)
        source = lat if size >= resolution else before
        return source.need("centers"), source.need("sigmas")

    G._w_fields, G.object_heatmaps, G.object_places = fields, heat, places  # type: ignore[method-assign]
    try:
        yield G
    finally:
        del G._w_fields, G.object_heatmaps, G.object_places  # back to the class's methods


@torch.no_grad()
def move_leak(G: Generator, resolution: int, samples: int = 64, offset_scale: float = 1.0) -> dict[str, float]:
    """Tracked co-move's fixed moves (its move_pairs, seed 0), each applied from `resolution` up."""
    moves = []
    for before, after, centers, delta in move_pairs(G, samples):
        img0 = G(before, offset_scale=offset_scale, noise_mode="const")
        with edit_only_from(G, before, resolution):
            img1 = G(after, offset_scale=offset_scale, noise_mode="const")
        moves.append(track_moves(img0, img1, centers, delta))
    return summarise(moves)


@torch.no_grad()
def block_leak(G: Generator, resolution: int, samples: int = 64, offset_scale: float = 1.0) -> dict[str, float]:
    """One block per picture resampled from `resolution` up: mean change inside the block and
    beyond half a block around it (uint8 levels), and their ratio (block locality)."""
    inside, outside = [], []
    for lat, resampled, block in block_pairs(G, samples, torch.Generator().manual_seed(5)):
        img0 = G(lat, offset_scale=offset_scale, noise_mode="const")
        with edit_only_from(G, lat, resolution):
            img1 = G(resampled, offset_scale=offset_scale, noise_mode="const")
        i, o = block_change_levels(img0, img1, block, G.config.grid)
        inside.append(i)
        outside.append(o)
    mean_in, mean_out = float(torch.cat(inside).mean()), float(torch.cat(outside).mean())
    return {"inside_levels": mean_in, "outside_levels": mean_out, "locality_levels": mean_in / max(mean_out, 1e-6)}


def main(argv: list[str] | None = None) -> int:
    from models.io.library import open_generator

    p = argparse.ArgumentParser(prog="python -m models.tools.leak_profile", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    G = open_generator(args.checkpoint, "cpu").generator.eval()
    if not (G.config.objects and G.config.grid):
        p.error(f"{args.checkpoint}: the leak profile needs a generator with objects and a grid")
    froms = [r for r in G.config.resolutions() if r > 4] + [NEVER]
    print("edit from | offsets | move: tracked found outside | block: inside outside locality")
    for r in [4] + froms:
        for scale in (1.0, 0.0):
            m, b = move_leak(G, r, args.samples, scale), block_leak(G, r, args.samples, scale)
            label = "never" if r == NEVER else f"{r} px"
            print(f"{label:>9} | {'on' if scale else 'off':>7} | {m['tracked']:.3f} {m['found']:.3f}"
                  f" {m['outside_levels']:6.2f} | {b['inside_levels']:6.2f} {b['outside_levels']:6.2f}"
                  f" {b['locality_levels']:7.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
