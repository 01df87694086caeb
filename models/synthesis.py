"""From latents to a frame's tensors (the image in uint8 at full size, the MTM offset
fields, the heatmaps), eagerly or as one traced graph.

Why: the studio renders on a worker thread while the GUI thread runs Python (mouse moves,
painting). An eager forward pass is a few hundred torch calls, and each one gives up and
takes back Python's GIL, so every call waits for the GUI thread: during a 60 Hz drag a
32 px preview of the 128 px `rooms` model took 60-80 ms instead of 27 ms. A traced graph
runs in C++ and holds the GIL once for the whole pass (measured with a thread holding the
GIL half of the time: eager 87-97 ms, traced 29-32 ms; alone 33 and 25 ms).

A trace is built on request (`build_trace`: the studio's worker does it when idle, as it
takes 0.4-1.2 s) per generator and input structure (device, which latents there are and
their shapes, where the synthesis stops, truncation 1 or not) and kept with the generator;
`synthesize` runs it when there is one and the eager pass otherwise. The traced graph
computes exactly the eager operations (tested to give the same pixels). Where tracing is
not available (a future torch without torch.jit) or fails, rendering stays eager and says
why once on stderr: slower under load, the same pixels.
"""
from __future__ import annotations

import sys
import warnings
import weakref
from dataclasses import fields

import torch
from torch import nn

from models.config import HIERARCHY_LEVELS
from models.nets.generator import Generator, Latents
from models.nets.layers import StyledConv, bilinear_resize, tensor_version

# generator -> {structure key: (traced module, offset names, heatmap names), or None: tracing
# failed, render eagerly}
_TRACES: weakref.WeakKeyDictionary[Generator, dict] = weakref.WeakKeyDictionary()
_WARNED: set[str] = set()
_TRACED_WEIGHTS: weakref.WeakKeyDictionary[Generator, tuple] = weakref.WeakKeyDictionary()  # weights_version


def offset_taps(generator: Generator) -> list[tuple[str, nn.Module]]:
    """(layer name, tap) of every MTM layer in synthesis order: "16.1" is resolution 16,
    second convolution (models/nets/layers.py StyledConv.offset_tap)."""
    taps: list[tuple[str, nn.Module]] = []
    for convs in generator.convs.values():
        assert isinstance(convs, nn.ModuleList)  # Generator.convs: a ModuleList of StyledConvs per resolution
        for conv in convs:
            assert isinstance(conv, StyledConv)
            if conv.mtm:
                taps.append((conv.name, conv.offset_tap))
    return taps


def capture_offsets(generator: Generator, run) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Run `run()` (a forward pass of `generator`) with hooks on the offset taps; returns
    its output and {layer name: offset field [B, 18, H, W]} of the layers it passed."""
    captured: dict[str, torch.Tensor] = {}
    hooks = [tap.register_forward_hook(lambda _m, _inp, out, name=name: captured.__setitem__(name, out))
             for name, tap in offset_taps(generator)]
    try:
        return run(), captured
    finally:
        for hook in hooks:
            hook.remove()


def heatmaps(generator: Generator, lat: Latents) -> dict[str, torch.Tensor]:
    """The spatial inputs the studio shows: "heatmaps_objects" [B, n, s, s] (s = the
    resolution, at most 64) and "heatmap_4/8/16" [B, 1, r, r] (hierarchical)."""
    cfg = generator.config
    out = {}
    if cfg.objects:
        out["heatmaps_objects"] = generator.object_heatmaps(lat, min(cfg.resolution, 64))
    if cfg.hierarchical:
        for r, h in zip(HIERARCHY_LEVELS, generator.level_heatmaps(lat)):
            out[f"heatmap_{r}"] = h
    return out


def to_uint8_tensor(images: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] in [-1, 1] -> [B, H, W, 3] uint8."""
    x = (images.float().clamp(-1, 1) + 1) * 127.5
    return x.round().to(torch.uint8).permute(0, 2, 3, 1)


def frame_tensors(generator: Generator, lat: Latents, psi: float | torch.Tensor,
                  offset_scale: float | torch.Tensor, stop_at: int | None = None):
    """(image [B, R, R, 3] uint8 at the full resolution R, {MTM layer: offsets [B, 18, h, w]},
    {name: heatmaps}). With `stop_at` the synthesis ends there and its image is upsampled."""
    image, offsets = capture_offsets(generator, lambda: generator(
        lat, psi=psi, offset_scale=offset_scale, noise_mode="const", stop_at=stop_at))
    full = generator.config.resolution
    if image.shape[-1] < full:
        image = bilinear_resize(image.float(), full)
    return to_uint8_tensor(image), offsets, heatmaps(generator, lat)


class _Synthesis(nn.Module):
    """frame_tensors with flat tensor inputs and outputs, the form tracing needs:
    (psi, offset_scale, *latent tensors) -> (image, *offset fields, *heatmaps). Everything
    a frame needs is inside, so no eager torch call (each a wait for the GIL) is left."""

    def __init__(self, generator: Generator, names: tuple[str, ...], stop_at: int | None, psi_one: bool):
        super().__init__()
        self.generator = generator
        self.names = names
        self.stop_at = stop_at
        self.psi_one = psi_one  # truncation 1 skips the truncation (as the eager pass does)
        self.offset_names: list[str] = []  # filled while tracing
        self.heatmap_names: list[str] = []

    def forward(self, psi: torch.Tensor, offset_scale: torch.Tensor, *tensors: torch.Tensor):
        lat = Latents(**dict(zip(self.names, tensors)))
        image, offsets, maps = frame_tensors(self.generator, lat, 1.0 if self.psi_one else psi,
                                             offset_scale, self.stop_at)
        self.offset_names, self.heatmap_names = list(offsets), list(maps)
        return (image, *offsets.values(), *maps.values())


def _say_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        print(f"steergan: {message}", file=sys.stderr)


def _present(lat: Latents) -> tuple[tuple[str, ...], tuple[torch.Tensor, ...]]:
    """The latents' fields that are set: their names and tensors, in field order."""
    items = [(f.name, getattr(lat, f.name)) for f in fields(lat) if getattr(lat, f.name) is not None]
    return tuple(name for name, _ in items), tuple(tensor for _, tensor in items)


def _key(generator: Generator, lat: Latents, psi: float, stop_at: int | None) -> tuple:
    names, tensors = _present(lat)
    shapes = tuple(tuple(t.shape) for t in tensors)
    return (str(generator.const.device), generator.const.dtype, names, shapes, stop_at, psi == 1.0)


def _inputs(generator: Generator, lat: Latents, psi: float, offset_scale: float) -> tuple:
    device = generator.const.device
    return (torch.tensor(float(psi), device=device), torch.tensor(float(offset_scale), device=device),
            *_present(lat)[1])


def has_trace(generator: Generator, lat: Latents, psi: float, stop_at: int | None = None) -> bool:
    """Whether `synthesize` with these inputs runs a trace (or knows it cannot)."""
    return _key(generator, lat, psi, stop_at) in _TRACES.get(generator, {})


@torch.no_grad()
def build_trace(generator: Generator, lat: Latents, psi: float, stop_at: int | None = None) -> bool:
    """Trace the synthesis for inputs structured like these (0.4-1.2 s for the 128 px
    `rooms` on one core, so the studio does it when its worker is idle). True if traced."""
    key = _key(generator, lat, psi, stop_at)
    traces = _TRACES.setdefault(generator, {})
    version = weights_version(generator)
    if _TRACED_WEIGHTS.get(generator) != version:  # traces of other weights are stale
        traces.clear()
        _TRACED_WEIGHTS[generator] = version
    if key not in traces:
        module = _Synthesis(generator, _present(lat)[0], stop_at, psi == 1.0)
        traces[key] = _trace(module, _inputs(generator, lat, psi, 1.0))
    return traces[key] is not None


def weights_version(generator: Generator) -> tuple:
    """The in-place edit counters of the convolution weights: the only values a trace
    holds as constants are computed from them (the smooth demodulation taps), so it is
    valid only while they hold. Read on every render, so only these ~12 tensors: all 110
    parameters of `rooms` took 159 us a frame, in Python, holding the GIL."""
    return tuple(tensor_version(conv.weight) for convs in generator.convs.values() for conv in convs.children()
                 if isinstance(conv, StyledConv))


def _trace(module: _Synthesis, inputs: tuple):
    if not hasattr(torch.jit, "trace"):
        _say_once("this torch has no torch.jit.trace: rendering eagerly (slower while the GUI is busy)")
        return None
    try:
        # A preview's eager pass first: it fills the layers' weight-only caches (the smooth
        # demodulation taps, layers.StyledConv), which the trace then holds as constants
        # instead of recomputing them from the weights every frame.
        if module.stop_at is not None and module.stop_at < module.generator.config.resolution:
            module(*inputs)
        with warnings.catch_warnings(), torch.jit.optimized_execution(False):
            # torch 2.9+ marks torch.jit deprecated; it is what runs a whole pass without the GIL
            # (torch.compile needs a C++ compiler on the user's machine, torch.export runs in Python).
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(module, inputs, check_trace=False)
    except Exception as exc:  # noqa: BLE001  a tracing limitation must not stop rendering: eager is right
        _say_once(f"tracing the generator failed ({type(exc).__name__}: {exc}); rendering eagerly")
        return None
    return traced, list(module.offset_names), list(module.heatmap_names)


@torch.no_grad()
def synthesize(generator: Generator, lat: Latents, psi: float, offset_scale: float,
               stop_at: int | None = None):
    """frame_tensors(...): through the trace for this input structure if one was built
    (build_trace), else eagerly. Both give the same pixels."""
    traces = _TRACES.get(generator)
    if traces and _TRACED_WEIGHTS.get(generator) != weights_version(generator):
        traces.clear()  # the weights changed in place since tracing: trace again when idle
    entry = (traces or {}).get(_key(generator, lat, psi, stop_at))
    if entry is None:
        return frame_tensors(generator, lat, psi, offset_scale, stop_at)
    traced, offset_names, heatmap_names = entry
    # Without the profiling executor: no slow profiling runs after the trace, and no fusion
    # that could change a pixel (the graph runs exactly the eager operations).
    with torch.jit.optimized_execution(False):
        image, *rest = traced(*_inputs(generator, lat, psi, offset_scale))
    return (image, dict(zip(offset_names, rest[:len(offset_names)])),
            dict(zip(heatmap_names, rest[len(offset_names):])))
