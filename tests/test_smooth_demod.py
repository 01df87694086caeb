"""The previews' smooth demodulation: exact where the style is locally constant (borders
included), close to the exact one on a trained generator, and only in previews."""
import numpy as np
import pytest
import torch

from kernels import smooth_demod_taps, smooth_demodulation
from kernels.modconv_ref import _demodulation


@pytest.mark.parametrize("h, w", [(1, 1), (1, 4), (2, 2), (3, 5), (5, 3), (8, 8)])
def test_equals_the_exact_demodulation_for_a_locally_constant_style(h, w):
    g = torch.Generator().manual_seed(h * 10 + w)
    weight = torch.randn(7, 5, 3, 3, generator=g, dtype=torch.float64)
    per_channel = torch.rand(2, 5, 1, 1, generator=g, dtype=torch.float64) + 0.5
    style = per_channel.expand(2, 5, h, w).contiguous()  # constant over space: every window constant
    exact = _demodulation(weight, style, 1e-8, padding=1)
    assert torch.allclose(smooth_demodulation(style, smooth_demod_taps(weight)), exact, rtol=1e-12, atol=0)


def test_differs_where_the_style_varies_and_refuses_other_shapes():
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(4, 3, 3, 3, generator=g)
    style = torch.rand(1, 3, 6, 6, generator=g) + 0.5
    taps = smooth_demod_taps(weight)
    assert not torch.allclose(smooth_demodulation(style, taps), _demodulation(weight, style, 1e-8, 1))
    with pytest.raises(ValueError, match="3x3 weights"):
        smooth_demod_taps(torch.randn(4, 3, 1, 1))
    with pytest.raises(ValueError, match=r"\[B, Ci, H, W\]"):
        smooth_demodulation(torch.rand(1, 3), taps)
    with pytest.raises(ValueError, match=r"taps \[9, Co, Ci\]"):
        smooth_demodulation(style, taps[:, :, :2])


def test_a_trained_generators_preview_is_close_to_the_exact_one(monkeypatch):
    """The shipped rooms-cpu, 32 px previews of 64 px frames: the smooth demodulation changes
    the preview by well under a level on average; full frames never use it."""
    from models.document.scene import initial_state
    from models.io.library import default_checkpoint, open_generator
    from models.nets import layers
    from models.render import render

    path = default_checkpoint()
    if path is None:
        pytest.skip("no bundled checkpoint")
    G = open_generator(path).generator
    states = [initial_state(G.config, seed) for seed in range(3)]
    smooth = [render(G, s, preview=32).image.astype(int) for s in states]
    full = [render(G, s).image for s in states]
    monkeypatch.setattr(layers, "SMOOTH_DEMOD_MIN", 10**6)  # exact everywhere
    exact = [render(G, s, preview=32).image.astype(int) for s in states]
    diffs = np.abs(np.stack(smooth) - np.stack(exact))
    assert 0 < diffs.mean() < 1.0 and diffs.max() <= 16, (diffs.mean(), diffs.max())
    for s, f in zip(states, full):
        assert np.array_equal(render(G, s).image, f)  # full frames are exact either way


def test_the_cached_taps_follow_the_weights_and_the_trace_gives_the_eager_preview():
    """The layer keeps its taps while its weight is unchanged, recomputes them when it
    changes (a loaded checkpoint, an optimiser step), and a traced preview equals the eager one."""
    from models.document.scene import initial_state
    from models.io.library import untrained_generator
    from models.nets.layers import StyledConv
    from models.render import latents_for
    from models.synthesis import build_trace, frame_tensors, synthesize

    G = untrained_generator("tiny-rooms")
    conv = next(m for m in G.modules() if isinstance(m, StyledConv) and m.resolution == 16)
    first = conv._smooth_taps()
    assert conv._smooth_taps() is first
    with torch.no_grad():
        conv.weight.mul_(2)
    again = conv._smooth_taps()
    assert again is not first and torch.allclose(again, first * 4)
    lat = latents_for(G, initial_state(G.config, 1))
    eager = frame_tensors(G, lat, 1.0, 1.0, stop_at=16)[0]
    assert build_trace(G, lat, 1.0, stop_at=16)
    assert torch.equal(synthesize(G, lat, 1.0, 1.0, stop_at=16)[0], eager)
    # The trace holds the taps as constants: when the weights change in place it is dropped,
    # and the preview follows the new weights.
    with torch.no_grad():  # not a uniform scale: the demodulation cancels that
        conv.weight[:, :, 1, 1] += 2.0
    changed = frame_tensors(G, lat, 1.0, 1.0, stop_at=16)[0]
    assert not torch.equal(changed, eager)
    assert torch.equal(synthesize(G, lat, 1.0, 1.0, stop_at=16)[0], changed)
    assert build_trace(G, lat, 1.0, stop_at=16)
    assert torch.equal(synthesize(G, lat, 1.0, 1.0, stop_at=16)[0], changed)


def test_previews_of_an_inference_mode_generator_and_with_gradients():
    from models.io.library import untrained_generator
    from models.nets.layers import StyledConv

    with torch.inference_mode():
        G = untrained_generator("tiny-rooms")
        lat = G.sample_latents(1, torch.Generator().manual_seed(0))
        assert G(lat, noise_mode="const", stop_at=16).shape[-1] == 16  # no version counter: still cached
    G = untrained_generator("tiny-rooms").requires_grad_(True)
    conv = next(m for m in G.modules() if isinstance(m, StyledConv) and m.resolution == 16)
    lat = G.sample_latents(1, torch.Generator().manual_seed(0))
    G(lat, noise_mode="const", stop_at=16).square().sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    # the gradient includes the demodulation's: the same as with the taps computed by hand
    from kernels import smooth_demod_taps

    assert conv._smooth_taps().requires_grad
    assert torch.allclose(conv._smooth_taps(), smooth_demod_taps(conv.weight * conv.wscale))
