"""render(generator, state): the one path from a SceneState to pixels.

Shared by the studio's render worker, the CLI and the tests. Latents are drawn from the
state's seeds on the CPU with torch's own generator, so the same state gives the same
latents on every machine and device. For a generator with the time capability, the state's
time and motion seed become its motion input (models/nets/motion.py); without it they are ignored.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from PIL import Image

from models.document.scene import SceneState
from models.nets.generator import Generator, Latents
from models.nets.motion import seeded_motion
from models.synthesis import frame_tensors, synthesize, to_uint8_tensor


@dataclass
class Frame:
    image: np.ndarray  # [H, W, 3] uint8
    heatmaps: dict[str, np.ndarray] = field(default_factory=dict)  # name -> [n, h, w] float32
    # MTM layer name ("16.1": resolution 16, second conv) -> [18, r, r] offsets, (dy, dx) per tap
    offsets: dict[str, np.ndarray] = field(default_factory=dict)
    preview: bool = False  # a coarser synthesis upsampled (drawn while dragging), not the final image


class FittedStyles(Protocol):
    """What rendering reads of a fit file (models/io/fit_file.FitData, a layer above)."""

    sha256: str
    styles: dict[str, torch.Tensor]
    seeds: dict[str, torch.Tensor]


def seeded_normal(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def latents_for(generator: Generator, state: SceneState, device: torch.device | str = "cpu",
                fit: FittedStyles | None = None) -> Latents:
    """The tensors a state stands for, batch 1. `fit`: the fit file the state names
    (state.fit), whose styles replace the drawn ones of the elements that still have the
    seed the fit gave them. (Tuned weights are the caller's: fit_file.tuned_copy.)"""
    cfg = generator.config
    state.check_fits(cfg)
    z = cfg.z_dim
    hierarchy = state.hierarchy
    hier = hierarchy is not None
    lat = Latents(z_global=seeded_normal(state.objects[0].style_seed if hier else state.background_seed, 1, z))
    if cfg.objects:
        objs = state.objects
        lat.z_objects = torch.stack([seeded_normal(o.style_seed, z) for o in objs])[None]
        lat.centers = torch.tensor([[o.center for o in objs]], dtype=torch.float32)
        lat.sigmas = torch.tensor([[o.effective_sigma for o in objs]], dtype=torch.float32)
        if cfg.object_kinds:  # check_fits has made sure each named kind is the generator's
            lat.kinds = torch.tensor([[-1 if o.kind is None else cfg.object_kinds.index(o.kind) for o in objs]])
    if cfg.grid:
        lat.z_blocks = torch.stack([seeded_normal(s, z) for s in state.block_seeds])[None]
    if hierarchy is not None:
        lat.root = torch.tensor([state.objects[0].center], dtype=torch.float32)
        lat.offsets1 = torch.tensor([hierarchy.offsets1], dtype=torch.float32)
        lat.offsets2 = torch.tensor([hierarchy.offsets2], dtype=torch.float32)
        lat.root_sigma = torch.tensor([state.objects[0].effective_sigma], dtype=torch.float32)
    if cfg.time is not None:
        codes, alpha = seeded_motion(cfg, state.motion_seed, state.time)
        lat.motion_codes = codes[None]
        lat.motion_alpha = torch.tensor([alpha], dtype=torch.float32)
    if fit is not None and state.fit is not None and fit.sha256 == state.fit:
        _apply_fit(lat, state, fit)
    return lat.to(device)


def _apply_fit(lat: Latents, state: SceneState, fit: FittedStyles) -> None:
    hier = state.hierarchy is not None
    seeds = {"seed_global": [state.objects[0].style_seed if hier else state.background_seed],
             "seed_objects": [o.style_seed for o in state.objects],
             "seed_blocks": list(state.block_seeds)}
    for style, seed_key in (("w_global", "seed_global"), ("w_objects", "seed_objects"), ("w_blocks", "seed_blocks")):
        if style not in fit.styles or (style == "w_objects" and lat.z_objects is None) or (
                style == "w_blocks" and lat.z_blocks is None):
            continue
        have = torch.tensor(seeds[seed_key], dtype=torch.int64)
        fitted = fit.seeds[seed_key].reshape(-1)
        if have.shape != fitted.shape:
            continue  # a scene of another shape: check_fits_generator says so where the file is opened
        setattr(lat, style, fit.styles[style][None].float())  # [1, w] or [1, n, w]
        setattr(lat, style + "_on", (have == fitted)[None] if style != "w_global" else (have == fitted))


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[B, 3, H, W] in [-1, 1] -> [B, H, W, 3] uint8."""
    return to_uint8_tensor(images).cpu().numpy()


@torch.no_grad()  # not inference_mode: cached inputs (motion codes) must stay usable by autograd
def render(generator: Generator, state: SceneState, *, precision: str = "float32",
           extras: bool = False, preview: int | None = None, fit: FittedStyles | None = None) -> Frame:
    """Render one state. `extras` also returns the heatmaps and MTM offset fields.
    `preview`: synthesise only up to this resolution (the skip architecture's RGB image
    there) and upsample it to the full size: the studio draws it while a drag is in
    progress, then the full frame. None, or a preview at least the full size: the image.
    float32 runs the traced synthesis where one was built (models/synthesis.py: the same
    pixels, and no waiting for Python's GIL while the studio's GUI thread is busy)."""
    device = generator.const.device
    lat = latents_for(generator, state, device, fit)
    if precision == "bfloat16":
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            image, offsets, maps = frame_tensors(generator, lat, state.truncation, state.offset_scale, preview)
    elif precision == "float32":
        image, offsets, maps = synthesize(generator, lat, state.truncation, state.offset_scale, preview)
    else:
        raise ValueError(f"precision must be 'float32' or 'bfloat16', got {precision!r}")
    frame = Frame(image=image[0].cpu().numpy(), preview=preview is not None and preview < generator.config.resolution)
    if extras:
        frame.offsets = {name: field_[0].float().cpu().numpy() for name, field_ in offsets.items()}
        frame.heatmaps = {name: m[0].float().cpu().numpy() for name, m in maps.items()}
    return frame


def resize_image(image: np.ndarray, size: int, smooth: bool = True) -> np.ndarray:
    """Square resize for export: Lanczos, or nearest-neighbour for crisp pixels."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    resample = Image.Resampling.LANCZOS if smooth else Image.Resampling.NEAREST
    return np.asarray(Image.fromarray(image).resize((size, size), resample))


def usable_device(value: str) -> str:
    """`value` as a device this machine can run SteerGAN on ("cpu", "cuda", "cuda:N"), or
    ValueError naming it and why not (torch answers a missing CUDA with an AssertionError and
    a traceback). The command line's --device and the studio's STEERGAN_DEVICE."""
    try:
        device = torch.device(value)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"{value!r} is not a device; use cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return "cpu"
    if device.type != "cuda":
        raise ValueError(f"{value!r}: SteerGAN runs on cpu or cuda, not {device.type}")
    if not torch.cuda.is_available():
        why = "this PyTorch is built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise ValueError(f"{value}: no CUDA device is available ({why})")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"{value}: there are only {torch.cuda.device_count()} CUDA devices")
    return str(device)


def is_out_of_memory(exc: BaseException) -> bool:
    """A GPU that ran out of memory (torch's own error, or a RuntimeError that says so): the
    studio's worker and the command line then render on the CPU and say so."""
    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())
