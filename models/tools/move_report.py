"""Why a moved object is not found: tracked co-move's fixed moves, broken down per move, for
a generator and for the procedural renderer (what real data gives).

    python -m models.tools.move_report CKPT [CKPT...] [--samples 256] [--json OUT]

Tracked co-move (models/metrics/tracked.py) counts a move as found when the before-image's
patch around the old center is best matched near the new center *and* explains most of
its variance there. When few are found, these tell the failures apart (session 15's
diagnosis, kept as a tool):

- `near_new`: the best match lies at the new place (whatever the residual): the object went
  where it was asked;
- `residual_ok`: the best match explains the patch (residual <= MAX_RESIDUAL);
- `stayed`: the best match lies at the old place: the object did not move;
- `departure_median`: the change at the old place (Gaussian-weighted like the patch) over
  the patch's variance: near 0, the old place still shows the object; near 2, it is gone;
- `residual_median`: the best match's residual: how different the object looks after the move.

An object that arrives looking different has a high `near_new`, a low `residual_ok`; one
that never leaves has a high `stayed` and a low departure.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from models.metrics import tracked as T

STAYED = 0.3  # a best match within this fraction of the move of the old place: it stayed


def departure(before: torch.Tensor, after: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """[B] the Gaussian-weighted squared change at the old center over the patch's variance."""
    S = before.shape[-1]
    a, b = T._to_unit(before), T._to_unit(after)
    coords = (torch.arange(S, device=a.device) + 0.5) / S
    dx = coords.view(1, 1, S) - centers[:, 0].view(-1, 1, 1)
    dy = coords.view(1, S, 1) - centers[:, 1].view(-1, 1, 1)
    w = torch.exp(-(dx ** 2 + dy ** 2) / (2 * T.PATCH_SIGMA ** 2))
    w = (w / w.sum(dim=(1, 2), keepdim=True))[:, None]
    mean = (a * w).sum(dim=(2, 3), keepdim=True)
    var = ((a - mean).square() * w).sum(dim=(1, 2, 3)).clamp_min(T.VARIANCE_FLOOR)
    return ((b - a).square() * w).sum(dim=(1, 2, 3)) / var


def breakdown(pairs, footprint: float = T.FOOTPRINT) -> dict[str, float]:
    """The report over (before, after, centers, deltas) batches (tracked.*_move_images)."""
    moves, departures, deltas = [], [], []
    for before, after, centers, delta in pairs:
        moves.append(T.track_moves(before, after, centers, delta, footprint))
        departures.append(departure(before, after, centers))
        deltas.append(delta)
    d = torch.cat(deltas)
    shift = torch.cat([m.found_shift for m in moves])
    residual = torch.cat([m.residual for m in moves])
    length = d.norm(dim=1)
    out = T.summarise(moves)
    out.update(near_new=float(((shift - d).norm(dim=1) <= T.TOLERANCE * length).float().mean()),
               residual_ok=float((residual <= T.MAX_RESIDUAL).float().mean()),
               stayed=float((shift.norm(dim=1) < STAYED * length).float().mean()),
               departure_median=float(torch.cat(departures).median()),
               residual_median=float(residual.median()), moves=int(d.shape[0]))
    return out


@torch.no_grad()
def report(checkpoint: Path, samples: int = 256, seed: int = 0) -> dict[str, dict[str, float]]:
    """{"model": ..., "renderer": ...} for one checkpoint (the renderer at its resolution)."""
    from models.io.checkpoint import load_checkpoint

    G, _ = load_checkpoint(checkpoint)
    G.eval()
    cfg = G.config
    footprint = T.FOOTPRINT if cfg.objects else T.FIGURE_FOOTPRINT
    return {"model": breakdown(T.generator_move_images(G, samples, seed), footprint),
            "renderer": breakdown(T.renderer_move_images(cfg.resolution, samples, seed, max(1, cfg.objects),
                                                         figures=not cfg.objects), footprint)}


KEYS = ("tracked", "found", "near_new", "residual_ok", "stayed", "departure_median", "residual_median",
        "outside_levels")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.tools.move_report", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="+", type=Path)
    p.add_argument("--samples", type=int, default=256, help="moves (tracked co-move's fixed ones; default 256)")
    p.add_argument("--json", type=Path, help="also write the numbers here")
    args = p.parse_args(argv)
    from models.io.checkpoint import CheckpointError

    results: dict[str, dict[str, float]] = {}
    renderer: dict[str, float] | None = None
    for ckpt in args.checkpoints:
        try:
            r = report(ckpt, args.samples)
        except CheckpointError as exc:
            print(f"move_report: error: {exc}", file=sys.stderr)
            return 2
        except ValueError as exc:  # a generator without objects or figures: no handles to move
            print(f"move_report: error: {ckpt}: {exc}", file=sys.stderr)
            return 2
        results[str(ckpt)] = r["model"]
        renderer = renderer or r["renderer"]
    results["renderer"] = renderer or {}
    width = max(len(k) for k in results)
    print("".ljust(width), *[k[:12].rjust(12) for k in KEYS])
    for name, row in results.items():
        print(name.ljust(width), *[f"{row.get(k, float('nan')):12.3f}" for k in KEYS])
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
