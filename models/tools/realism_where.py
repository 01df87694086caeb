"""Where does the realism classifier find a rooms model's fakes? The same classifier test
(metrics/realism.py) with both sides changed alike: without colour detail, in grey, blurred,
at 32 and 16 px; and on crops where the layout puts objects and where it puts none.

    python -m models.tools.realism_where CKPT [--samples 256] [--tests 4] [--json OUT]

A change that lowers the accuracy took away what the classifier used; a crop that keeps it
high holds the difference. Session 22 asked whether the iridescent fills are what it sees
(README, the twenty-second comparison): with both sides' colour detail removed the shipped
rooms-cpu scored as before.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

import torch
import torch.nn.functional as F

from models.metrics.realism import blur, classifier_accuracy

LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
CROP = 24  # pixels a side of the object and background crops (64 px images)


def chroma_lowpass(images: torch.Tensor) -> torch.Tensor:
    """The luma kept, the colour (image less its luma) averaged over 2x2 pixels and upsampled
    bilinearly (JPEG's 4:2:0): a pixel-to-pixel change of hue is gone, an edge's is softened."""
    luma = (images * LUMA.to(images)).sum(dim=1, keepdim=True)
    colour = F.interpolate(F.avg_pool2d(images - luma, 2), scale_factor=2, mode="bilinear", align_corners=False)
    return (luma + colour).clamp(-1, 1)


TRANSFORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "as is": lambda x: x,
    "colour detail removed": chroma_lowpass,
    "grey": lambda x: (x * LUMA.to(x)).sum(dim=1, keepdim=True).expand(-1, 3, -1, -1).contiguous(),
    "blurred 1 px": lambda x: blur(x, 1.0),
    "32 px": lambda x: F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest"),
    "16 px": lambda x: F.interpolate(F.avg_pool2d(x, 4), scale_factor=4, mode="nearest"),
}


def crops(images: torch.Tensor, heat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, the CROP x CROP window (on a 4 px grid) that holds the most of the layout's
    heat [B, S, S], and the one that holds the least: the objects, and the bare room."""
    windows = F.avg_pool2d(heat[:, None].float(), CROP, stride=4)[:, 0]
    b, _, w = windows.shape
    flat = windows.reshape(b, -1)
    out = []
    for pick in (flat.argmax(dim=1), flat.argmin(dim=1)):
        ys, xs = (pick // w * 4).tolist(), (pick % w * 4).tolist()
        out.append(torch.stack([images[i, :, y:y + CROP, x:x + CROP] for i, (y, x) in enumerate(zip(ys, xs))]))
    return out[0], out[1]


@torch.no_grad()
def realism_where(G, samples: int = 256, tests: int = 4, log=lambda msg: None) -> dict[str, float]:
    """The mean accuracy of `tests` classifier tests per change and crop; G draws the real
    images' layouts, so that the crops are taken alike."""
    from models.data import make_dataset
    from models.document.scene import DEFAULT_OBJECT_SIGMA
    from models.nets.heatmaps import gaussian_heatmaps

    if not G.config.objects:
        raise ValueError("realism_where needs a rooms generator (objects placed by a layout)")
    size = G.config.resolution
    data = make_dataset("rooms", size, G.const.device, n_objects=G.config.objects)
    results: dict[str, list[float]] = {}
    for k in range(tests):
        rng = torch.Generator().manual_seed(2 + 7919 * k)
        real, fake, heat = [], [], []
        for lo in range(0, samples, 32):
            batch = data.sample(min(32, samples - lo), rng)
            lat = G.sample_latents(batch.centers.shape[0], rng, G.const.device)
            lat.centers = batch.centers
            lat.sigmas = torch.full(batch.centers.shape[:2], DEFAULT_OBJECT_SIGMA) * batch.present.float()
            real.append(batch.images.float().cpu())
            fake.append(G(lat, noise_mode="const").float().cpu())
            heat.append(gaussian_heatmaps(lat.centers.float(), lat.sigmas.float(), size).sum(dim=1).clamp(0, 1).cpu())
        r, f, h = torch.cat(real), torch.cat(fake), torch.cat(heat)
        for name, change in TRANSFORMS.items():
            results.setdefault(name, []).append(classifier_accuracy(change(r), change(f), seed=k))
        (r_obj, r_bare), (f_obj, f_bare) = crops(r, h), crops(f, h)
        results.setdefault("crops at objects", []).append(classifier_accuracy(r_obj, f_obj, seed=k))
        results.setdefault("crops of bare room", []).append(classifier_accuracy(r_bare, f_bare, seed=k))
        log(f"test {k + 1} of {tests}: " + ", ".join(f"{n} {v[-1]:.3f}" for n, v in results.items()))
    return {name: sum(values) / len(values) for name, values in results.items()}


def main(argv: list[str] | None = None) -> int:
    from models.io.checkpoint import CheckpointError, load_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--samples", type=int, default=256, help="images a side per test")
    parser.add_argument("--tests", type=int, default=4)
    parser.add_argument("--json", help="write the accuracies here")
    args = parser.parse_args(argv)
    try:
        G, _ = load_checkpoint(args.checkpoint)
        report = realism_where(G.eval(), args.samples, args.tests, log=lambda m: print(m, file=sys.stderr))
    except (CheckpointError, ValueError) as exc:
        print(f"realism_where: {args.checkpoint}: {exc}", file=sys.stderr)
        return 1
    rounded = {k: round(v, 3) for k, v in report.items()}
    print(json.dumps(rounded, indent=1))
    if args.json:
        from models.document.fileio import atomic_write_json

        try:  # the project's writer: atomic, so a failed write leaves no half file
            atomic_write_json(args.json, rounded)
        except OSError as exc:
            print(f"realism_where: cannot write {args.json}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
