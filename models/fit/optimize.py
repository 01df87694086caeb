"""Fit a generator to a picture (issue 26): the scene's latents, then optionally its weights.

1. The layout: the segmenter's blobs place the handles (models/fit/layout.py).
2. The styles: every element's w (each object, each grid block, the global one) starts at
   the average w and is optimised with the centres and sizes against pixels plus the
   discriminator backbone's features (an in-domain perceptual loss), the noise fixed, as
   the studio renders (noise_mode "const"). The best step is kept.
3. Pivotal tuning (Roich et al. 2021, as DragGAN does for real pictures), if asked: the
   synthesis weights are tuned around the fitted latents; the mapping stays, so a style the
   user draws anew afterwards looks as it would have.

Bounded: a step budget and a time budget per stage (the schedule follows the steps, so a
fit that ends by its steps is deterministic; the time budget is a cap); a cancel callback
checked every step; the generator passed in is never modified (fitting works on a copy, so the studio's
render thread can go on using it). Deterministic for a given seed on a given machine.
The judges of a fit (PSNR, the metrics probe's class agreement) are not part of its loss.
"""
from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

from models.document.scene import MAX_SIGMA, SceneState
from models.fit.layout import Blob, class_map, initial_scene
from models.io.fit_file import FitData, encode_fit
from models.nets.generator import Generator, Latents

Progress = Callable[[str, int, int, float, "np.ndarray | None"], None]


class FitCancelled(Exception):
    """The user cancelled: nothing was produced."""


# Pivotal tuning's steps when asked for (`steergan fit --tune`, the studio's setting); the
# time budget (FitSettings.tune_seconds) caps them on a slow or busy machine.
TUNE_STEPS = 400  # ~27 s on the idle 2-core machine (15 steps/s at 64 px)


@dataclass(frozen=True)
class FitSettings:
    # Latents: this many steps (~22 s on the idle 2-core machine: 18.6 steps/s at 64 px,
    # rooms-cpu) unless the time cap ends them first (a busy machine).
    steps: int = 400
    seconds: float = 30.0
    tune_steps: int = 0  # pivotal tuning: 0 = none
    tune_seconds: float = 30.0
    lr: float = 0.05  # the styles' Adam step (StyleGAN2's projector uses 0.1 on one w)
    lr_layout: float = 0.004  # centres and sizes, in image units
    tune_lr: float = 3e-3
    feature_weight: float = 0.5  # backbone features against pixels
    seed: int = 0  # the scene's seeds (and so the fit) follow from it
    preview_every: int = 10  # steps between live images for the progress callback


@dataclass
class FitOutcome:
    state: SceneState  # an ordinary scene; state.fit names `fit`
    fit: FitData  # to be saved (models/io/fit_file.save_fit) before state is used
    image: np.ndarray  # [S, S, 3] uint8: the reconstruction as rendered
    psnr: float  # dB against the picture, on uint8 pixels
    psnr_latents: float  # after stage 2, before tuning
    seconds: float  # in all
    seconds_latents: float  # of which stages 1-2
    steps: int
    tune_steps: int
    blobs: list[Blob] = field(default_factory=list)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


class _Perceptual:
    """Distance between two images in the backbone's features, each scale's channels
    normalised to unit length per pixel (as LPIPS does) so that no scale dominates."""

    def __init__(self, backbone, target: torch.Tensor):
        self.backbone = backbone
        with torch.no_grad():
            self.target = [self._norm(f) for f in backbone.features(target)]

    @staticmethod
    def _norm(f: torch.Tensor) -> torch.Tensor:
        return f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-8)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        feats = self.backbone.features(image)
        total = torch.zeros(())
        for f, t in zip(feats, self.target):
            total = total + (self._norm(f) - t).pow(2).sum(dim=1).mean()
        return total / len(feats)


def fit_picture(generator: Generator, picture: torch.Tensor, checkpoint_sha256: str, backbone,
                settings: FitSettings = FitSettings(), progress: Progress | None = None,
                cancelled: Callable[[], bool] | None = None) -> FitOutcome:
    """Fit `generator` to `picture` ([1, 3, S, S] in [-1, 1] at the generator's resolution).
    `backbone`: models/io/backbone_file.load_backbone's (segmenter and feature loss).
    Raises FitCancelled if `cancelled()` turns true; ValueError for a picture of the wrong size."""
    from models.render import latents_for, render, to_uint8

    res = generator.config.resolution
    if picture.shape != (1, 3, res, res):
        raise ValueError(f"the picture must be [1, 3, {res}, {res}], got {list(picture.shape)}")
    if generator.config.time is not None:
        raise ValueError("fitting a picture needs a still-image generator (this one makes video)")
    started = time.perf_counter()
    torch.manual_seed(settings.seed)
    G = copy.deepcopy(generator).float().eval().requires_grad_(False)
    target = picture.float()
    target_u8 = to_uint8(target)[0]
    scene, used = initial_scene(G.config, class_map(backbone, target), settings.seed, backbone.classes)
    lat = latents_for(G, scene)
    perceptual = _Perceptual(backbone, target)
    params = _optimised(G, lat)
    if lat.root is not None:
        _search_pose(G, lat, params, target, perceptual, settings)

    def loss_of(image: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(image, target) + settings.feature_weight * perceptual(image)

    def check_cancel() -> None:
        if cancelled is not None and cancelled():
            raise FitCancelled()

    # Stage 2: the styles and the layout.
    groups = [{"params": [p for k, p in params.items() if k.startswith("w_")], "lr": settings.lr},
              {"params": [p for k, p in params.items() if not k.startswith("w_")], "lr": settings.lr_layout}]
    opt = torch.optim.Adam([g for g in groups if g["params"]], betas=(0.9, 0.99))
    best = (float("inf"), {k: p.detach().clone() for k, p in params.items()})
    deadline = time.perf_counter() + settings.seconds
    step = 0
    with torch.enable_grad():
        while step < settings.steps and time.perf_counter() < deadline:
            check_cancel()
            # Cosine ramp-down over the step budget (the projector's schedule): large moves
            # first, fine ones at the end.
            ramp = 0.5 * (1 + math.cos(math.pi * min(1.0, step / max(1, settings.steps))))
            for g, base in zip(opt.param_groups, (settings.lr, settings.lr_layout)):
                g["lr"] = base * (0.1 + 0.9 * ramp)
            image = G(_with(lat, params), noise_mode="const")
            mse = F.mse_loss(image, target)
            loss = mse + settings.feature_weight * perceptual(image)
            opt.zero_grad(set_to_none=True)
            loss.backward(inputs=list(params.values()))
            if mse.item() < best[0]:
                best = (mse.item(), {k: p.detach().clone() for k, p in params.items()})
            opt.step()
            _clamp_layout(params)
            step += 1
            _report(progress, "styles", step, settings.steps, mse.item(), image, settings.preview_every)
    with torch.no_grad():
        for k, p in params.items():
            p.copy_(best[1][k])
    fitted = _with(lat, params)
    latents_image = to_uint8(G(fitted, noise_mode="const"))[0]
    seconds_latents = time.perf_counter() - started
    psnr_latents = psnr(latents_image, target_u8)

    # Stage 3: pivotal tuning of the synthesis weights around the fitted latents.
    tune_step = 0
    weights: dict[str, torch.Tensor] = {}
    if settings.tune_steps > 0:
        tuned = {name: p for name, p in G.named_parameters() if not name.startswith("mapping.")}
        for p in tuned.values():
            p.requires_grad_(True)
        opt = torch.optim.Adam(list(tuned.values()), lr=settings.tune_lr, betas=(0.9, 0.99))
        frozen = Latents(**{k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in vars(fitted).items()})
        deadline = time.perf_counter() + settings.tune_seconds
        # As in stage 2, the best step is kept (the pivot itself is step 0), so tuning never
        # ends further from the picture than the latents alone; the step ramps up over the
        # first tenth of the steps, as Adam's first steps from a good pivot overshoot.
        tune_best = (float("inf"), {k: p.detach().clone() for k, p in tuned.items()})
        warmup = max(1, settings.tune_steps // 10)
        with torch.enable_grad():
            while tune_step < settings.tune_steps and time.perf_counter() < deadline:
                check_cancel()
                opt.param_groups[0]["lr"] = settings.tune_lr * min(1.0, (tune_step + 1) / warmup)
                image = G(frozen, noise_mode="const")
                loss = loss_of(image)
                tune_mse = F.mse_loss(image.detach(), target).item()
                if tune_mse < tune_best[0]:
                    tune_best = (tune_mse, {k: p.detach().clone() for k, p in tuned.items()})
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                tune_step += 1
                _report(progress, "tuning", tune_step, settings.tune_steps, tune_mse, image, settings.preview_every)
        G.requires_grad_(False)
        with torch.no_grad():
            last_mse = F.mse_loss(G(frozen, noise_mode="const"), target).item()
            if last_mse > tune_best[0]:  # the last step was not the best
                for k, p in tuned.items():
                    p.copy_(tune_best[1][k])
        # Stored in fp16 (fit_file): round now, so that what was measured is what reopens.
        weights = {name: p.detach().half() for name, p in G.named_parameters() if not name.startswith("mapping.")}
        with torch.no_grad():
            for name, p in G.named_parameters():
                if name in weights:
                    p.copy_(weights[name].float())
    check_cancel()
    state, fit = _as_scene(G, scene, params, checkpoint_sha256, weights)
    # The reported PSNR is of the scene as the studio will render it (rounded layout, fp16
    # weights), through the same path; the file's name is its hash, so it is taken last.
    fit.sha256 = "0" * 64
    final = render(G, replace(state, fit=fit.sha256), fit=fit, precision="float32").image
    value = psnr(final, target_u8)
    # No timings in the file: the same picture, seed and step counts give the same bytes.
    fit.info = {"steps": step, "tune_steps": tune_step, "psnr": round(value, 3),
                "psnr_latents": round(psnr_latents, 3), "seed": settings.seed}
    fit.sha256 = encode_fit(fit)[1]
    state = replace(state, fit=fit.sha256)
    return FitOutcome(state, fit, final, value, psnr_latents, time.perf_counter() - started, seconds_latents,
                      step, tune_step, list(used))


POSE_CANDIDATES = 64  # poses tried for a figure before the descent, in batches of 16


@torch.no_grad()
def _search_pose(G: Generator, lat: Latents, params: dict[str, torch.Tensor], target: torch.Tensor,
                 perceptual: _Perceptual, settings: FitSettings) -> None:
    """A figure's pose is far from convex for gradient descent (a limb on the wrong side
    stays there), so first try poses drawn from the model's own prior around the segmented
    root, each rendered at the average style, and start from the closest (the segmenter's
    guess is one of the candidates). Costs about four forward passes of 16 on the CPU."""
    from models.nets.heatmaps import sample_hierarchy

    g = torch.Generator().manual_seed(settings.seed + 1)
    _, off1, off2 = sample_hierarchy(POSE_CANDIDATES - 1, g, layout_prior=G.config.layout_prior)
    off1 = torch.cat([params["offsets1"].detach(), off1])
    off2 = torch.cat([params["offsets2"].detach(), off2])
    scores = []
    for lo in range(0, POSE_CANDIDATES, 16):
        n = min(16, POSE_CANDIDATES - lo)
        batch = _with(lat.repeat_each(n), {k: v.detach().expand(n, *v.shape[1:]) for k, v in params.items()})
        batch = replace(batch, offsets1=off1[lo:lo + n], offsets2=off2[lo:lo + n])
        image = G(batch, noise_mode="const")
        for i in range(n):
            one = image[i:i + 1]
            scores.append(float(F.mse_loss(one, target) + settings.feature_weight * perceptual(one)))
    best = min(range(POSE_CANDIDATES), key=scores.__getitem__)
    params["offsets1"].copy_(off1[best:best + 1])
    params["offsets2"].copy_(off2[best:best + 1])


def _optimised(G: Generator, lat: Latents) -> dict[str, torch.Tensor]:
    """The leaf tensors stage 2 optimises, starting at the average w and the layout."""
    w_avg = G.mapping.w_avg.detach().float()
    out: dict[str, torch.Tensor] = {"w_global": w_avg[None].clone()}
    if lat.z_objects is not None:
        out["w_objects"] = w_avg.expand(1, lat.z_objects.shape[1], -1).clone()
        out["centers"] = lat.need("centers").clone()
        out["log_sigmas"] = lat.need("sigmas").clamp_min(1e-4).log()  # hidden objects stay hidden: see _with
    if lat.z_blocks is not None:
        out["w_blocks"] = w_avg.expand(1, lat.z_blocks.shape[1], -1).clone()
    if lat.root is not None:
        out.update(root=lat.need("root").clone(), offsets1=lat.need("offsets1").clone(),
                   offsets2=lat.need("offsets2").clone())
    for p in out.values():
        p.requires_grad_(True)
    return out


def _with(lat: Latents, params: dict[str, torch.Tensor]) -> Latents:
    """`lat` with the optimised tensors in place of the drawn ones."""
    changes: dict[str, torch.Tensor] = {}
    for key in ("w_global", "w_objects", "w_blocks"):
        if key in params:
            changes[key] = params[key]
            changes[key + "_on"] = torch.ones(params[key].shape[:-1], dtype=torch.bool)  # [B] or [B, n]
    if "centers" in params:
        visible = lat.need("sigmas") > 0
        changes["centers"] = params["centers"]
        changes["sigmas"] = torch.where(visible, params["log_sigmas"].exp(), torch.zeros_like(lat.need("sigmas")))
    for key in ("root", "offsets1", "offsets2"):
        if key in params:
            changes[key] = params[key]
    return replace(lat, **changes)


@torch.no_grad()
def _clamp_layout(params: dict[str, torch.Tensor]) -> None:
    """Keep the layout inside what a scene can hold (SceneState's limits)."""
    for key in ("centers", "root"):
        if key in params:
            params[key].clamp_(-0.2, 1.2)
    if "log_sigmas" in params:
        params["log_sigmas"].clamp_(math.log(0.03), math.log(MAX_SIGMA * 0.5))


def _report(progress: Progress | None, stage: str, step: int, total: int, mse: float, image: torch.Tensor,
            every: int) -> None:
    if progress is None:
        return
    from models.render import to_uint8

    value = 10 * math.log10(4.0 / max(mse, 1e-12))  # [-1, 1] images: peak-to-peak 2
    shown = to_uint8(image.detach())[0] if step == 1 or step % max(1, every) == 0 or step == total else None
    progress(stage, step, total, value, shown)


def _as_scene(G: Generator, scene: SceneState, params: dict[str, torch.Tensor], checkpoint_sha256: str,
              weights: dict[str, torch.Tensor]) -> tuple[SceneState, FitData]:
    """The fitted scene (layout from the optimised tensors) and its fit file's contents."""
    from models.document.scene import Hierarchy

    hier = scene.hierarchy is not None
    styles = {"w_global": params["w_global"].detach()[0].clone()}
    seeds = {"seed_global": torch.tensor([scene.objects[0].style_seed if hier else scene.background_seed])}
    objs = list(scene.objects)
    if "w_objects" in params:
        styles["w_objects"] = params["w_objects"].detach()[0].clone()
        seeds["seed_objects"] = torch.tensor([o.style_seed for o in scene.objects])
        centers = params["centers"].detach()[0].tolist()
        sigmas = params["log_sigmas"].detach()[0].exp().tolist()
        objs = [replace(o, center=(round(c[0], 5), round(c[1], 5)),
                        sigma=round(min(MAX_SIGMA, s), 5) if o.visible else o.sigma)
                for o, c, s in zip(objs, centers, sigmas)]
    if "w_blocks" in params:
        styles["w_blocks"] = params["w_blocks"].detach()[0].clone()
        seeds["seed_blocks"] = torch.tensor(list(scene.block_seeds))
    state = replace(scene, objects=tuple(objs))
    if hier:
        root = params["root"].detach()[0].tolist()
        state = replace(state, objects=(replace(objs[0], center=(round(root[0], 5), round(root[1], 5))),),
                        hierarchy=Hierarchy(offsets1=tuple(map(tuple, params["offsets1"].detach()[0].tolist())),
                                            offsets2=tuple(map(tuple, params["offsets2"].detach()[0].tolist()))))
    fit = FitData(checkpoint_sha256, styles, seeds, weights)
    return state, fit

