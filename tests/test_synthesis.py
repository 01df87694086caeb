"""The frame path: the CPU bilinear resize, the traced synthesis (the same pixels as the
eager pass, and really used), the offset taps, and the worker tracing when idle."""
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.document.scene import initial_state
from models.io.library import untrained_generator
from models.nets.generator import Generator
from models.nets.layers import bilinear_resize
from models.render import latents_for, render
from models.synthesis import build_trace, frame_tensors, has_trace, offset_taps
from tests.conftest import with_live_offsets


@pytest.mark.parametrize("shape,size", [((1, 5, 4, 4), 8), ((2, 3, 32, 32), 64), ((1, 7, 4, 4), 32),
                                        ((1, 2, 32, 32), 128), ((1, 1, 6, 6), 16), ((1, 2, 16, 16), 8)])
def test_bilinear_resize_equals_interpolate(shape, size):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = bilinear_resize(x, size)
    ref = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    assert ours.shape == ref.shape
    assert torch.allclose(ours, ref, atol=1e-12)


def test_bilinear_resize_gradient_equals_interpolate():
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    (bilinear_resize(x, 16) * torch.arange(256.0, dtype=torch.float64).view(16, 16)).sum().backward()
    ours = x.grad.clone()
    x.grad = None
    (F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False)
     * torch.arange(256.0, dtype=torch.float64).view(16, 16)).sum().backward()
    assert torch.allclose(ours, x.grad)


def _live(name):
    generator = with_live_offsets(untrained_generator(name), scale=0.5)
    return generator.eval()


def _states(config):
    """A traced structure's other values: moved objects, truncation, offsets, time."""
    first = replace(initial_state(config, 1), truncation=0.8)
    other = replace(initial_state(config, 7), truncation=0.5, offset_strength=0.3).move_center(0, 0, (0.2, 0.8))
    if config.time is not None:
        other = replace(other, time=1.3)
    return first, other


@pytest.mark.parametrize("name", ["tiny-rooms", "tiny-figures", "tiny-clips"])
@pytest.mark.parametrize("preview", [None, 16])
def test_traced_render_gives_the_eager_pixels_offsets_and_heatmaps(name, preview):
    generator = _live(name)
    first, other = _states(generator.config)
    assert build_trace(generator, latents_for(generator, first), first.truncation, preview)
    traced = render(generator, other, extras=True, preview=preview)
    image, offsets, maps = frame_tensors(generator, latents_for(generator, other), other.truncation,
                                         other.offset_scale, preview)
    assert np.array_equal(traced.image, image[0].numpy())
    assert traced.offsets.keys() == offsets.keys() and offsets
    for key in offsets:
        assert np.array_equal(traced.offsets[key], offsets[key][0].numpy())
        assert np.abs(traced.offsets[key]).max() > 0.01  # live offsets: the comparison means something
    assert traced.heatmaps.keys() == maps.keys() and maps
    for key in maps:
        assert np.array_equal(traced.heatmaps[key], maps[key][0].numpy())
    assert traced.preview == (preview is not None)


def test_render_runs_the_trace_not_the_eager_pass(monkeypatch):
    generator = _live("tiny-rooms")
    state = initial_state(generator.config, 3)
    build_trace(generator, latents_for(generator, state), state.truncation)
    expected = render(generator, state).image

    def eager(*_args, **_kwargs):
        raise AssertionError("the eager forward ran although a trace exists")

    monkeypatch.setattr(Generator, "forward", eager)
    moved = state.move_center(0, 0, (0.7, 0.3))
    assert render(generator, moved).image.shape == expected.shape  # the trace, not forward()
    assert has_trace(generator, latents_for(generator, moved), moved.truncation)
    # Another structure (a preview) has no trace: that one is the eager pass.
    assert not has_trace(generator, latents_for(generator, moved), moved.truncation, 16)
    with pytest.raises(AssertionError, match="eager forward ran"):
        render(generator, moved, preview=16)


def test_truncation_one_and_other_values_are_separate_traces():
    generator = _live("tiny-rooms")
    state = initial_state(generator.config, 0)
    lat = latents_for(generator, state)
    build_trace(generator, lat, 1.0)
    assert has_trace(generator, lat, 1.0) and not has_trace(generator, lat, 0.7)


def test_offset_taps_see_each_mtm_layer_in_order():
    generator = _live("tiny-figures")
    assert [name for name, _ in offset_taps(generator)] == ["8.0", "8.1", "16.0", "16.1"]
    state = initial_state(generator.config, 0)
    frame = render(generator, replace(state, offsets_on=False), extras=True)
    assert all(np.all(field == 0) for field in frame.offsets.values())  # offsets off: zero fields
    frame = render(generator, state, extras=True)
    assert frame.offsets["16.1"].shape == (18, 16, 16)


def test_a_mistyped_noise_mode_is_an_error():
    generator = untrained_generator("tiny-plain")
    lat = generator.sample_latents(1)
    with pytest.raises(ValueError, match="noise_mode must be one of random, const, none; got 'constant'"):
        generator(lat, noise_mode="constant")
