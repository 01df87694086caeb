"""Measure fitting (issue 26) on this machine; prints a JSON report and the README's table.

    python -m models.fit.bench_fit [--checkpoint checkpoints/rooms-cpu.safetensors] [--pictures 6]

(a) the generator's own samples (their true latents are known), (b) held-out renderer
pictures (a seed the training streams never draw from). For each: PSNR with the latents
alone and after pivotal tuning, seconds, and the fraction of pixels the metrics probe
classes the same in the picture and the reconstruction (all pixels, and the object pixels
only). The probe is not part of the fitting loss (which uses the D backbone).

Then whether fitted scenes still edit: each fitted scene (tuned) and each sampled scene
gets the same edits, one visible object moved by a fixed displacement (tracked as in
models/metrics/tracked.py: the content found where it was sent, little change elsewhere)
and one grid block resampled (change inside the block over change beyond half a block, in
uint8 levels, as models/metrics/steering.block_report).
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from models.document.fileio import file_sha256
from models.document.scene import SceneState, initial_state
from models.fit.optimize import TUNE_STEPS, FitSettings, fit_picture
from models.io.backbone_file import backbone_path, load_backbone
from models.io.checkpoint import load_checkpoint
from models.io.fit_file import FitData, tuned_copy
from models.io.picture import picture_tensor
from models.metrics.probe import DEFAULT_PROBE, load_probe
from models.metrics.steering import block_change_levels
from models.metrics.tracked import FIGURE_FOOTPRINT, FOOTPRINT, track_moves
from models.render import render

HELD_OUT_SEED = 424242  # renderer pictures: no training stream is seeded with this


def class_agreement(probe, picture: np.ndarray, reconstruction: np.ndarray) -> tuple[float, float]:
    """(all pixels, object pixels of the picture): the fraction the probe classes alike."""
    with torch.no_grad():
        a = probe(picture_tensor(picture))[0].argmax(1)[0]
        b = probe(picture_tensor(reconstruction))[0].argmax(1)[0]
    same = a == b
    objects = a != 0
    return float(same.float().mean()), float(same[objects].float().mean()) if objects.any() else float("nan")


def _u(image: np.ndarray) -> torch.Tensor:
    return picture_tensor(image)


def edit_scores(generator, state: SceneState, fit: FitData | None, rng: random.Random) -> dict[str, float]:
    """One object move (tracked) and one block resample (levels in / out) on `state`."""
    g = tuned_copy(generator, fit) if fit is not None else generator
    out: dict[str, float] = {}
    before = render(g, state, fit=fit).image
    visible = [i for i, o in enumerate(state.objects) if o.visible]
    if visible:
        i = rng.choice(visible)
        cx, cy = state.objects[i].center
        angle = rng.uniform(0, 2 * np.pi)
        step = rng.uniform(0.12, 0.25)
        dx, dy = step * np.cos(angle), step * np.sin(angle)
        # keep the destination inside the frame, where a user would drag to
        dx = float(np.clip(cx + dx, 0.1, 0.9) - cx)
        dy = float(np.clip(cy + dy, 0.1, 0.9) - cy)
        moved = render(g, state.move_center(0, i, (cx + dx, cy + dy)), fit=fit).image
        footprint = FIGURE_FOOTPRINT if state.hierarchy is not None else FOOTPRINT
        t = track_moves(_u(before), _u(moved), torch.tensor([[cx, cy]]), torch.tensor([[dx, dy]]), footprint)
        out["tracked"] = float(t.success[0])
    if state.block_seeds:
        b = rng.randrange(len(state.block_seeds))
        resampled = render(g, state.resample_blocks([b], rng.randrange(2**31)), fit=fit).image
        grid = int(round(len(state.block_seeds) ** 0.5))
        inside, outside = block_change_levels(_u(before), _u(resampled), torch.tensor([b]), grid)
        out["block_in"], out["block_out"] = float(inside[0]), float(outside[0])
    return out


def _summary(rows: list[dict], key: str) -> float:
    values = [r[key] for r in rows if key in r and np.isfinite(r[key])]
    return statistics.fmean(values) if values else float("nan")


def _locality(rows: list[dict]) -> float:
    return _summary(rows, "block_in") / max(_summary(rows, "block_out"), 1e-6)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="checkpoints/rooms-cpu.safetensors")
    parser.add_argument("--pictures", type=int, default=6, help="pictures of each kind (default 6)")
    parser.add_argument("--steps", type=int, default=FitSettings.steps, help="latents steps (default: the fit's)")
    parser.add_argument("--tune-steps", type=int, default=TUNE_STEPS, help="tuning steps (default: the fit's)")
    parser.add_argument("--edits", type=int, default=4, help="edits per scene for the editing scores (default 4)")
    parser.add_argument("--json", help="also write the report here")
    args = parser.parse_args(argv)
    generator, _ = load_checkpoint(args.checkpoint)
    sha = file_sha256(args.checkpoint)
    backbone, _ = load_backbone(backbone_path())
    probe, _ = load_probe(DEFAULT_PROBE)
    probe.eval()
    cfg = generator.config
    settings = FitSettings(steps=args.steps, tune_steps=args.tune_steps)  # the time caps as the studio has them
    scenes = [initial_state(cfg, 5000 + i) for i in range(args.pictures)]
    own: list[np.ndarray] = [render(generator, s).image for s in scenes]
    from models.data import make_dataset

    data = make_dataset("rooms" if cfg.objects else "figures", cfg.resolution, "cpu")
    held = data.sample(args.pictures, torch.Generator().manual_seed(HELD_OUT_SEED)).images
    renderer: list[np.ndarray] = [((held[i].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).byte().numpy()
                                  for i in range(args.pictures)]
    report: dict = {"checkpoint": str(args.checkpoint), "threads": torch.get_num_threads(),
                    "load_average": __import__("os").getloadavg()[0], "settings": vars(args)}
    sampled_edits = [edit_scores(generator, s, None, random.Random(k * 7919 + e))
                     for k, s in enumerate(scenes) for e in range(args.edits)]
    for kind, pictures in (("own", own), ("renderer", renderer)):
        rows = []
        for k, picture in enumerate(pictures):
            started = time.perf_counter()
            result = fit_picture(generator, picture_tensor(picture), sha, backbone, replace(settings, seed=k))
            agree_all, agree_obj = class_agreement(probe, picture, result.image)
            row: dict = {"psnr_latents": result.psnr_latents, "psnr_tuned": result.psnr,
                   "seconds_latents": result.seconds_latents, "seconds": time.perf_counter() - started,
                   "steps": result.steps, "tune_steps": result.tune_steps,
                   "class_agreement": agree_all, "object_agreement": agree_obj}
            edits = [edit_scores(generator, result.state, result.fit, random.Random(k * 7919 + e))
                     for e in range(args.edits)]
            row["edits"] = edits
            rows.append(row)
            print(json.dumps({kind: k, **{key: round(v, 3) for key, v in row.items() if isinstance(v, float)}}),
                  flush=True)
        all_edits = [e for r in rows for e in r["edits"]]
        report[kind] = {key: _summary(rows, key) for key in ("psnr_latents", "psnr_tuned", "seconds_latents",
                                                              "seconds", "class_agreement", "object_agreement")}
        report[kind].update(tracked=_summary(all_edits, "tracked"), block_locality=_locality(all_edits))
        report[kind]["rows"] = rows
    report["sampled"] = {"tracked": _summary(sampled_edits, "tracked"), "block_locality": _locality(sampled_edits)}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k not in ("own", "renderer")}))
    print("| pictures | PSNR latents (dB) | PSNR tuned (dB) | s latents | s in all | probe class agreement"
          " (all / object pixels) | tracked co-move | block locality (levels) |")
    print("|---|---|---|---|---|---|---|---|")
    for kind in ("own", "renderer"):
        r = report[kind]
        print(f"| {kind} ({args.pictures}) | {r['psnr_latents']:.2f} | {r['psnr_tuned']:.2f}"
              f" | {r['seconds_latents']:.1f} | {r['seconds']:.1f}"
              f" | {r['class_agreement']:.3f} / {r['object_agreement']:.3f} |"
              f" {r['tracked']:.2f} | {r['block_locality']:.2f} |")
    s = report["sampled"]
    print(f"| sampled scenes (the same edits) | | | | | | {s['tracked']:.2f} | {s['block_locality']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
