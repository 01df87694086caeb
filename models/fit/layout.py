"""Where a picture's objects are, as a starting scene (issue 26): the handles start on them.

The segmenter is the discriminator backbone's segmentation head (models/nets/projected.py,
trained on the procedural rooms and figures; shipped as checkpoints/d_backbone.safetensors).
Its class map becomes connected blobs; a rooms model gets its objects on the largest
blobs' mass centres (objects it has no blob for start hidden, where the user can show
them); a hierarchical model gets its root on the figure's mass centre and its finer centers
at the skeleton prior's mean offsets, scaled to the figure's height.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, replace

import numpy as np
import torch

from models.config import SKELETON_OFFSETS1, SKELETON_OFFSETS2
from models.document.scene import DEFAULT_OBJECT_SIGMA, Hierarchy, ObjectState, SceneState, draw_scene

MIN_BLOB_FRACTION = 0.004  # blobs under 0.4 % of the picture (16 px at 64 px) are noise
# The figures data's typical height, as a fraction of the picture, at which the skeleton
# prior's offsets are measured (models/data/figures.py draws figures about this tall).
PRIOR_FIGURE_HEIGHT = 0.6


@dataclass(frozen=True)
class Blob:
    label: int  # the segmenter's class
    area: int  # pixels
    center: tuple[float, float]  # mass centre, normalised image units
    height: float  # vertical extent, normalised


@torch.no_grad()
def class_map(segmenter, image: torch.Tensor) -> np.ndarray:
    """[S, S] int class per pixel of a [1, 3, S, S] picture in [-1, 1] (at the segmenter's 64 px)."""
    logits = segmenter.segment(image.float())
    return logits.argmax(dim=1)[0].cpu().numpy().astype(np.int64)


def blobs(labels: np.ndarray, background: int = 0) -> list[Blob]:
    """4-connected regions of one class each, largest first, noise-sized ones dropped."""
    h, w = labels.shape
    seen = np.zeros_like(labels, dtype=bool)
    found = []
    min_area = max(1, int(MIN_BLOB_FRACTION * h * w))
    for y0, x0 in zip(*np.nonzero(labels != background)):
        if seen[y0, x0]:
            continue
        label = labels[y0, x0]
        stack, ys, xs = [(y0, x0)], [], []
        seen[y0, x0] = True
        while stack:
            y, x = stack.pop()
            ys.append(y)
            xs.append(x)
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < h and 0 <= nx < w and not seen[ny, nx] and labels[ny, nx] == label:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        if len(ys) >= min_area:
            center = ((float(np.mean(xs)) + 0.5) / w, (float(np.mean(ys)) + 0.5) / h)
            found.append(Blob(int(label), len(ys), center, (max(ys) - min(ys) + 1) / h))
    return sorted(found, key=lambda b: -b.area)


def initial_scene(config, labels: np.ndarray, seed: int,
                  classes: list[str] | None = None) -> tuple[SceneState, list[Blob]]:
    """A scene for a generator of `config` whose handles sit on the blobs of `labels`;
    its seeds drawn from `seed` (so a fit is reproducible). A generator told kinds
    (config.object_kinds) gets each object as the kind its blob was segmented as, where
    `classes` (the segmenter's) names one of them. -> (scene, the blobs used)."""
    base = draw_scene(seed, objects=0 if config.hierarchical else config.objects,
                      hierarchical=config.hierarchical, grid=config.grid, layout_prior=config.layout_prior,
                      kinds=tuple(config.object_kinds))
    found = blobs(labels)
    if config.hierarchical:
        if not found:
            return base, []
        # The figure: every non-background pixel together (limbs can segment apart).
        ys, xs = np.nonzero(labels != 0)
        h, w = labels.shape
        root = ((float(xs.mean()) + 0.5) / w, (float(ys.mean()) + 0.5) / h)
        height = (ys.max() - ys.min() + 1) / h
        k = height / PRIOR_FIGURE_HEIGHT
        hier = Hierarchy(offsets1=tuple((m[0] * k, m[1] * k) for m, _ in SKELETON_OFFSETS1),
                         offsets2=tuple((m[0] * k, m[1] * k) for m, _ in SKELETON_OFFSETS2))
        root_obj = replace(base.objects[0], center=root)
        whole = Blob(-1, int(len(ys)), root, float(height))
        return replace(base, objects=(root_obj,), hierarchy=hier), [whole]
    used = found[:config.objects]
    rng = random.Random(seed)
    objs = []
    for i, old in enumerate(base.objects):
        if i < len(used):
            seen = classes[used[i].label] if classes is not None and 0 <= used[i].label < len(classes) else None
            objs.append(ObjectState(center=used[i].center, sigma=DEFAULT_OBJECT_SIGMA, style_seed=old.style_seed,
                                    kind=seen if seen in config.object_kinds else old.kind))
        else:  # nothing seen for it: hidden, somewhere a user can find it
            objs.append(ObjectState(center=(round(rng.uniform(0.3, 0.7), 4), round(rng.uniform(0.3, 0.7), 4)),
                                    sigma=DEFAULT_OBJECT_SIGMA, style_seed=old.style_seed, visible=False,
                                    kind=old.kind))
    return replace(base, objects=tuple(objs)), used
