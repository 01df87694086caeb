"""Sample sheets of a checkpoint for the README: `python -m models.tools.showcase CKPT --out assets/NAME`.

Every picture goes through render(generator, state), like the studio: random samples, one
object dragged in steps, a block resampled, a style swapped, offsets on / half / off.
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

from models.document.fileio import write_image
from models.document.scene import SceneState, initial_state
from models.io.library import open_generator
from models.render import render, resize_image

BORDER = 4


def sheet(rows: list[list[np.ndarray]], cell: int) -> np.ndarray:
    """Images on a white grid, each upscaled (nearest) to `cell` pixels."""
    h, w = len(rows), max(len(r) for r in rows)
    out = np.full((h * (cell + BORDER) + BORDER, w * (cell + BORDER) + BORDER, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            y, x = BORDER + i * (cell + BORDER), BORDER + j * (cell + BORDER)
            out[y:y + cell, x:x + cell] = resize_image(img, cell, smooth=False)
    return out


def drag_sequence(G, state: SceneState, steps: int = 6) -> list[np.ndarray]:
    x0, y0 = state.objects[0].center
    frames = []
    for k in range(steps):
        x = 0.2 + 0.6 * k / (steps - 1)
        frames.append(render(G, state.move_center(0, 0, (x, y0))).image)
    return frames


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--out", required=True, help="file prefix, e.g. assets/rooms-cpu")
    parser.add_argument("--cell", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    loaded = open_generator(args.checkpoint)
    G, cfg = loaded.generator, loaded.generator.config
    prefix = Path(args.out)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    seeds = range(args.seed, args.seed + 16)
    written: list[str] = []

    def write_sheet(kind: str, rows: list) -> None:
        written.append(f"{prefix}_{kind}.png")
        write_image(written[-1], sheet(rows, args.cell))

    samples = [render(G, initial_state(cfg, s)).image for s in seeds]
    write_sheet("samples", [samples[i:i + 8] for i in (0, 8)])
    write_sheet("drag", [drag_sequence(G, initial_state(cfg, s).move_center(0, 0, (0.2, 0.5))) for s in seeds[:3]])
    states = [initial_state(cfg, s) for s in seeds[:3]]
    if cfg.grid:
        rows = []
        for s, st in zip(seeds, states):
            after = st.resample_blocks([cfg.grid + 1], seed=s + 100)  # an inner block
            a, b = render(G, st).image, render(G, after).image
            diff = np.abs(a.astype(int) - b.astype(int)).sum(-1)
            heat = np.clip(diff * 3, 0, 255).astype(np.uint8)
            rows.append([a, b, np.stack([heat] * 3, -1)])
        write_sheet("block", rows)
    if cfg.objects:
        write_sheet("style", [[render(G, st.with_object(0, style_seed=s * 10 + k)).image if k else render(G, st).image
                               for k in range(4)] for s, st in zip(seeds, states)])
    if cfg.mtm:
        write_sheet("offsets", [[render(G, replace(st, offset_strength=v)).image for v in (1.0, 0.5)]
                                + [render(G, replace(st, offsets_on=False)).image] for st in states])
    print("\n".join(f"wrote {w}" for w in written))


if __name__ == "__main__":
    main()
