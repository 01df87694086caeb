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
    samples = [render(G, initial_state(cfg, s)).image for s in seeds]
    write_image(f"{prefix}_samples.png", sheet([samples[i:i + 8] for i in (0, 8)], args.cell))
    written = [f"{prefix}_samples.png"]
    rows = [drag_sequence(G, initial_state(cfg, s).move_center(0, 0, (0.2, 0.5))) for s in seeds[:3]]
    write_image(f"{prefix}_drag.png", sheet(rows, args.cell))
    written.append(f"{prefix}_drag.png")
    if cfg.grid:
        rows = []
        for s in seeds[:3]:
            st = initial_state(cfg, s)
            block = cfg.grid + 1  # an inner block
            after = st.resample_blocks([block], seed=s + 100)
            a, b = render(G, st).image, render(G, after).image
            diff = np.abs(a.astype(int) - b.astype(int)).sum(-1)
            heat = np.clip(diff * 3, 0, 255).astype(np.uint8)
            rows.append([a, b, np.stack([heat] * 3, -1)])
        write_image(f"{prefix}_block.png", sheet(rows, args.cell))
        written.append(f"{prefix}_block.png")
    if cfg.objects:
        rows = []
        for s in seeds[:3]:
            st = initial_state(cfg, s)
            rows.append([render(G, st).image] + [render(G, st.with_object(0, style_seed=s * 10 + k)).image
                                                 for k in range(1, 4)])
        write_image(f"{prefix}_style.png", sheet(rows, args.cell))
        written.append(f"{prefix}_style.png")
    if cfg.mtm:
        rows = []
        for s in seeds[:3]:
            st = initial_state(cfg, s)
            rows.append([render(G, replace(st, offset_strength=v)).image for v in (1.0, 0.5)]
                        + [render(G, replace(st, offsets_on=False)).image])
        write_image(f"{prefix}_offsets.png", sheet(rows, args.cell))
        written.append(f"{prefix}_offsets.png")
    print("\n".join(f"wrote {w}" for w in written))


if __name__ == "__main__":
    main()
