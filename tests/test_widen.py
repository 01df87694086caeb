"""Widening a generator's finest level (models/nets/widen.py): the wider network draws what
the narrower drew, trains from there, and nothing else passes for a widening."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from models.config import ARCHITECTURES
from models.nets.generator import Generator
from models.nets.widen import widen_state, widened_level

# tiny-rooms-own's finest level (32 px) from 8 to 12 channels, with an MTM layer there too so
# that the offset convolution's widening is covered.
NARROW = dataclasses.replace(ARCHITECTURES["tiny-rooms-own"], mtm=(8, 32))
WIDE = dataclasses.replace(NARROW, channels={**NARROW.channels, 32: 12})


def _trained_like(config, seed: int) -> Generator:
    """A generator whose zero-initialised parts (sprites, offsets, biases) are not zero, as
    after training: a widening that kept only fresh-zero weights would pass otherwise."""
    torch.manual_seed(seed)
    G = Generator(config).eval()
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return G


def _images(G: Generator, seed: int = 0) -> torch.Tensor:
    lat = G.sample_latents(3, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return G(lat, noise_mode="const")


def test_the_wider_generator_draws_what_the_narrower_drew():
    narrow = _trained_like(NARROW, 0)
    wide = Generator(WIDE).eval()
    wide.load_state_dict(widen_state(narrow.state_dict(), wide.state_dict(), 32))
    before, after = _images(narrow), _images(wide)
    assert before.abs().max() > 0.1  # a picture, not zeros
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-4)
    # the new channels exist and carry features (the first convolution's fresh rows)
    assert wide.convs["32"][0].weight[8:].abs().sum() > 0
    # ... and nothing reads them into the picture yet
    assert torch.count_nonzero(wide.torgbs["32"].weight[:, 8:]) == 0


def test_training_opens_the_new_channels():
    """The weights that read the new channels start at zero but their gradients do not."""
    narrow = _trained_like(NARROW, 1)
    wide = Generator(WIDE)
    wide.load_state_dict(widen_state(narrow.state_dict(), wide.state_dict(), 32))
    lat = wide.sample_latents(2, torch.Generator().manual_seed(1))
    wide(lat).square().mean().backward()
    assert wide.torgbs["32"].weight.grad[:, 8:].abs().sum() > 0
    assert wide.convs["32"][1].weight.grad[:8, 8:].abs().sum() > 0


def test_only_a_wider_finest_level_is_a_widening():
    assert widened_level(NARROW, WIDE) == 32
    assert widened_level(WIDE, NARROW) is None  # narrower
    assert widened_level(NARROW, NARROW) is None  # the same
    coarser = dataclasses.replace(NARROW, channels={**NARROW.channels, 16: 12})
    assert widened_level(NARROW, coarser) is None  # another level
    assert widened_level(NARROW, dataclasses.replace(WIDE, grid=3)) is None  # more than the width
    assert widened_level(ARCHITECTURES["rooms-cpu-own"], ARCHITECTURES["rooms-cpu-wide"]) == 64
    narrow, coarse = Generator(NARROW).state_dict(), Generator(coarser).state_dict()
    with pytest.raises(ValueError, match="convs.16"):
        widen_state(narrow, coarse, 32)
    with pytest.raises(ValueError, match="more than"):
        widen_state({k: v for k, v in narrow.items() if not k.startswith("sprites.")}, Generator(WIDE).state_dict(), 32)


def test_a_relay_state_starts_the_wider_architecture(tmp_path, monkeypatch):
    """A warm state of the narrow architecture starts the wide one (the eighteenth comparison's
    arm); the reverse is refused with the file named."""
    from models.training.configs import training_config
    from models.training.gpu_worker import WarmTrainer, widened_from
    from models.training.state import TrainStateError

    monkeypatch.setitem(ARCHITECTURES, "tiny-rooms-wide", dataclasses.replace(
        ARCHITECTURES["tiny-rooms-own"], channels={**ARCHITECTURES["tiny-rooms-own"].channels, 32: 12}))
    assert widened_from("tiny-rooms-own", "tiny-rooms-wide") == 32 and widened_from(None, "tiny-rooms-wide") is None
    # (a projected D: a StyleGAN2 D's widths follow G's, so its state would not fit; that is refused)
    base = dataclasses.replace(training_config("tiny-rooms-projected"), architecture="tiny-rooms-own")
    state = tmp_path / "base" / "state.safetensors"
    WarmTrainer(base, tmp_path / "base", "cpu", state_out=state).run(max_steps=2)
    again = WarmTrainer(base, tmp_path / "again", "cpu")
    again.warm_start(state)
    wide = WarmTrainer(dataclasses.replace(base, architecture="tiny-rooms-wide"), tmp_path / "wide", "cpu")
    wide.warm_start(state)
    assert wide.images_seen == again.images_seen == 2 * base.batch
    torch.testing.assert_close(_images(wide.G_ema.eval()), _images(again.G_ema.eval()), atol=1e-5, rtol=1e-4)
    wide.state_out = tmp_path / "wide" / "state.safetensors"
    wide.run(max_steps=3)  # (steps in all: one more, on the wide networks)
    back = WarmTrainer(base, tmp_path / "back", "cpu")
    with pytest.raises(TrainStateError, match="architecture='tiny-rooms-wide'"):
        back.warm_start(wide.state_out)
