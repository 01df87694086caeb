"""Object palettes (GeneratorConfig.object_palette, nets/palette.py)."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from models.config import ARCHITECTURES, ConfigError, GeneratorConfig
from models.nets.generator import Generator
from models.nets.palette import ObjectPalette
from tests.conftest import grow_and_train

TINY_PALETTE = dataclasses.replace(ARCHITECTURES["tiny-rooms-own"], object_palette=2)


def _fixed_choice(p: ObjectPalette, colour: int, gate_logit: float = 30.0) -> None:
    """Every pixel takes colour `colour` of its object, at brightness 1, gated fully in."""
    with torch.no_grad():
        p.choose.weight.zero_()
        bias = torch.full((p.colours + 2,), -30.0)
        bias[colour], bias[p.colours], bias[p.colours + 1] = 30.0, 0.0, gate_logit
        p.choose.bias.copy_(bias)
        p.strength.fill_(1.0)


def test_inside_an_object_the_picture_takes_the_objects_own_colour():
    torch.manual_seed(0)
    p = ObjectPalette(w_dim=8, channels=4, colours=3)
    _fixed_choice(p, colour=1)
    w = torch.randn(1, 2, 8)
    centers = torch.tensor([[[0.25, 0.5], [0.75, 0.5]]])
    xs = (torch.arange(16) + 0.5) / 16
    d2 = (xs.view(1, 1, 1, 16) - centers[..., 0, None, None]) ** 2 + (xs.view(1, 1, 16, 1) - 0.5) ** 2
    heat = torch.exp(-d2 / (2 * 0.05 ** 2))
    heat = heat / heat.amax(dim=(-2, -1), keepdim=True)  # each peaks at exactly 1
    rgb = torch.zeros(1, 3, 16, 16)
    out = p(rgb, torch.randn(1, 4, 16, 16), w, heat)
    colours = p.object_colours(w)[0, :, 1]  # [2 objects, 3]
    peak_left = int(heat[0, 0].flatten().argmax())
    peak_right = int(heat[0, 1].flatten().argmax())
    assert torch.allclose(out[0].flatten(1)[:, peak_left], colours[0], atol=1e-5)
    assert torch.allclose(out[0].flatten(1)[:, peak_right], colours[1], atol=1e-5)
    assert not torch.allclose(colours[0], colours[1], atol=0.05)  # two objects, two colours
    assert float(out.detach()[..., 0, :].abs().max()) < 1e-3  # far from both: the picture as it was


def test_a_closed_gate_paints_nothing():
    torch.manual_seed(0)
    p = ObjectPalette(w_dim=8, channels=4, colours=2)
    _fixed_choice(p, colour=0, gate_logit=-30.0)
    rgb = torch.randn(1, 3, 8, 8)
    out = p(rgb, torch.randn(1, 4, 8, 8), torch.randn(1, 1, 8), torch.ones(1, 1, 8, 8))
    assert torch.allclose(out, rgb, atol=1e-6)


def test_a_generator_grown_with_palettes_draws_what_it_drew_until_they_learn():
    torch.manual_seed(0)
    g0, g1 = Generator(ARCHITECTURES["tiny-rooms-own"]).eval(), Generator(TINY_PALETTE).eval()
    missing, unexpected = g1.load_state_dict(g0.state_dict(), strict=False)
    assert not unexpected and all(name.startswith("palette.") for name in missing) and "palette.strength" in missing
    lat = g0.sample_latents(3, torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(g0(lat, noise_mode="const"), g1(lat, noise_mode="const"))
    g1.train()
    g1(lat, noise_mode="const").square().mean().backward()
    assert g1.palette.strength.grad is not None and float(g1.palette.strength.grad.abs()) > 0  # training opens it


def test_palettes_warm_start_from_a_state_without_them(tmp_path, monkeypatch):
    from models.training.configs import training_config
    from models.training.gpu_worker import grown_weights

    assert grown_weights("rooms-cpu-own", "rooms-cpu-palette") == {
        "palette.palette.weight", "palette.palette.bias", "palette.choose.weight", "palette.choose.bias",
        "palette.strength"}
    monkeypatch.setitem(ARCHITECTURES, "tiny-rooms-palette", TINY_PALETTE)
    base = dataclasses.replace(training_config("tiny-rooms-projected"), architecture="tiny-rooms-own")
    grown = grow_and_train(base, "tiny-rooms-palette", tmp_path)
    assert float(grown.G.palette.strength.detach().abs()) > 0


@pytest.mark.parametrize("change, message", [
    ({"object_palette": 9}, "object_palette must be between 0"),
    ({"object_palette": -1}, "object_palette must be between 0"),
    ({"object_palette": 2.5}, "object_palette must be an integer"),
    ({"objects": 0, "object_sprites": 0, "objects_own_style": False}, "object_palette needs objects"),
])
def test_bad_palette_settings_are_named(change, message):
    data = {**TINY_PALETTE.to_dict(), **change}
    with pytest.raises(ConfigError, match=message):
        GeneratorConfig.from_dict(data)
