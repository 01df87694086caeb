"""Comparison runs side by side: warm states (the relay's, a `steergan train --warm-start`
run's) or checkpoints, measured with the relay's settings, plus how speckled the objects are,
and one sheet of the same latents for every model with real images beneath.

    python -m models.training.compare_states NAME=PATH [NAME=PATH ...] [--out DIR]
        [--samples N FD REALISM]

NAME=P1,P2,... names the uniform average of several warm states' EMA generators (one run's
saves: Polyak averaging, a longer EMA measured after the fact; session 27).

Every session that compared arms wrote this as a throw-away script (session 18 kept it).
Prints one JSON line per model; writes DIR/metrics.json and DIR/sheet.png (a row of 8 per
model, in the order given, then real images).

`off_line_median`: losses.off_line_colour of 4x4 patches drawn where the layout's objects
are (a figure's parts; losses.patch_weight, as chroma_match draws them): how far a patch's colours stray from one
line through colour space. Real rooms 0.003; the iridescent fills of session 18's rooms-cpu
0.03. chroma_match trains on it, so for a run with that term it describes, it does not judge.

For a figures generator also `arms` and `arms_real` (models/metrics/limbs.py): how much of
the outer arms of the skeletons it was given the metrics probe sees as the figure, and the
same on real figures, and `part_accuracy`, `part_accuracy_real` and each part's share
(models/metrics/parts.py): how often a fresh part segmenter sees each part where the
skeleton fixes it. For a rooms generator `kind_accuracy`, `kind_accuracy_real` and
`kinds_told` (models/metrics/kinds.py): how often a fresh namer names its objects as the
kinds of the real layouts it drew, and DIR/kinds.png: a row per model, two layouts' first
object drawn as each kind in turn (metrics/kinds.kind_row).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from PIL import Image

SHEET_SEED = 123  # the latents of the sheet and of the speckle statistic, the same for every model
REPORTED = ("realism_accuracy", "realism_accuracy_each", "domain_fd", "co_move_tracked", "co_move_tracked_ceiling",
            "co_move_tracked_found", "block_locality_levels", "style_swap_locality", "colour_spread")


@torch.no_grad()
def off_line_median(G, samples: int = 256, seed: int = SHEET_SEED) -> tuple[float, torch.Tensor]:
    """The median off-line colour of G's object patches, and its first 8 images (the sheet's row)."""
    from models.training.losses import off_line_colour, patch_weight, texture_patches

    rng = torch.Generator().manual_seed(seed)
    values, first = [], None
    for lo in range(0, samples, 32):
        lat = G.sample_latents(min(32, samples - lo), rng, G.const.device)
        images = G(lat, noise_mode="const").float().cpu()
        first = images[:8] if first is None else first
        values.append(off_line_colour(texture_patches(images, 64, rng, patch_weight(lat, images.shape[-1]))))
    assert first is not None
    return float(torch.cat(values).median()), first


def real_off_line_median(G, samples: int = 256, seed: int = SHEET_SEED) -> tuple[float, torch.Tensor]:
    """The same for the real images G was trained to draw (patches at their objects, or a
    figure's parts, as chroma_match draws them)."""
    from models.data import make_dataset
    from models.metrics.evaluate import real_dataset_name
    from models.training.losses import off_line_colour, patch_weight, texture_patches
    from models.training.trainer import layout_latents

    data = make_dataset(real_dataset_name(G), G.config.resolution)
    rng = torch.Generator().manual_seed(seed)
    values, first = [], None
    for lo in range(0, samples, 32):
        batch = data.sample(min(32, samples - lo), rng)
        where = patch_weight(layout_latents(batch, G.config.hierarchical), batch.images.shape[-1])
        first = batch.images[:8] if first is None else first
        values.append(off_line_colour(texture_patches(batch.images, 64, rng, where)))
    assert first is not None
    return float(torch.cat(values).median()), first


def main(argv: list[str] | None = None) -> int:
    from models.data.preview import grid_image
    from models.io.checkpoint import CheckpointError, load_checkpoint
    from models.training.relay import RelayError, checkpoint_from_warm_state, measure
    from models.training.state import saved_kind

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", metavar="NAME=PATH", help="a warm state or a checkpoint, named;"
                        " P1,P2,... the average of warm states' EMA generators")
    parser.add_argument("--out", default="runs/compare", help="folder for metrics.json, sheet.png and the"
                        " checkpoints made from warm states")
    parser.add_argument("--samples", type=int, nargs=3, metavar=("N", "FD", "REALISM"),
                        help="the evaluation's sample counts (default: the relay's)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results, rows, kind_rows, G = {}, [], [], None
    for item in args.models:
        name, sep, path_text = item.partition("=")
        if not sep or not name or not path_text:
            print(f"compare_states: {item!r} is not NAME=PATH", file=sys.stderr)
            return 2
        # A file that exists is one path, commas in its name or not; otherwise P1,P2,... a list.
        paths = [Path(path_text)] if Path(path_text).is_file() else [Path(t) for t in path_text.split(",")]
        path = paths[0]
        try:
            if len(paths) > 1:  # several warm states of one run: their EMA generators averaged
                path, _ = checkpoint_from_warm_state(name, paths, out / f"{name}.safetensors")
            elif saved_kind(path) == "warm":
                path, _ = checkpoint_from_warm_state(name, path, out / f"{name}.safetensors")
            G, info = load_checkpoint(path)
        except (CheckpointError, RelayError) as exc:
            print(f"compare_states: {exc}", file=sys.stderr)
            return 1
        G.eval()
        speckle, images = off_line_median(G)
        metrics = measure(Path(path), log=lambda *a: None, samples=tuple(args.samples) if args.samples else None)
        row = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items() if k in REPORTED}
        row["off_line_median"] = round(speckle, 4)
        if G.config.hierarchical:
            from models.metrics.limbs import arm_coverage
            from models.metrics.parts import part_accuracy
            from models.metrics.probe import DEFAULT_PROBE, load_probe

            row.update({k: round(v, 4) for k, v in arm_coverage(G, load_probe(DEFAULT_PROBE)[0]).items()})
            n = args.samples[0] if args.samples else 256
            row.update({k: round(v, 4) for k, v in part_accuracy(G, samples=n, train_images=min(2048, 8 * n)).items()})
        elif G.config.objects and G.config.time is None:
            from models.metrics.kinds import kind_accuracy, kind_row

            kind_rows.append(kind_row(G))
            n = args.samples[0] if args.samples else 256  # the namer learns from 12 rooms per one measured
            kinds = kind_accuracy(G, samples=n, train_images=min(3072, 12 * n))
            row.update({k: (round(v, 4) if isinstance(v, float) else v) for k, v in kinds.items()})
        row["images"] = (info.meta.get("trained_on") or {}).get("images")
        results[name] = row
        rows.append(images)
        print(name, json.dumps(row), flush=True)
    assert G is not None
    real_speckle, real = real_off_line_median(G)
    results["_real"] = {"off_line_median": round(real_speckle, 4)}
    print("real", json.dumps(results["_real"]), flush=True)
    (out / "metrics.json").write_text(json.dumps(results, indent=1))
    sheet = grid_image(torch.cat(rows + [real]).clamp(-1, 1), columns=8)
    sheet.resize((sheet.width * 2, sheet.height * 2), Image.Resampling.NEAREST).save(out / "sheet.png")
    if kind_rows:  # rooms: a row per model, each layout's object as bed, window, ... rug
        kind_sheet = grid_image(torch.cat(kind_rows).clamp(-1, 1), columns=len(kind_rows[0]))
        kind_sheet.resize((kind_sheet.width * 2, kind_sheet.height * 2), Image.Resampling.NEAREST).save(
            out / "kinds.png")
    print(f"{out / 'metrics.json'}, {out / 'sheet.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
