"""Object sprites (nets/sprites.py): an object's own features, drawn in its coordinates."""
import pytest
import torch

from models.config import ARCHITECTURES, GeneratorConfig
from models.nets.generator import Generator
from models.nets.sprites import ObjectSprites, basis_waves


def _sprites(channels=3, basis=6, seed=0) -> ObjectSprites:
    torch.manual_seed(seed)
    module = ObjectSprites(w_dim=8, channels=channels, basis=basis)
    with torch.no_grad():
        module.coeffs.weight.normal_()
        module.coeffs.bias.normal_()
    return module


def test_the_basis_starts_with_the_gaussian_and_has_no_repeats():
    freqs, phases = basis_waves(9)
    assert freqs.shape == (9, 2) and phases.shape == (9,)
    assert torch.equal(freqs[0], torch.zeros(2)) and phases[0] == 0
    keys = {(round(float(f[0]), 4), round(float(f[1]), 4), round(float(p), 4)) for f, p in zip(freqs, phases)}
    assert len(keys) == 9
    assert ((freqs[1:].norm(dim=1) >= 0.5 - 1e-6) & (freqs[1:].norm(dim=1) <= 3 + 1e-6)).all()


def test_a_new_sprite_draws_nothing():
    module = ObjectSprites(w_dim=8, channels=3, basis=6)
    x = torch.randn(2, 3, 16, 16)
    out = module(x, torch.randn(2, 2, 8), torch.rand(2, 2, 2), torch.full((2, 2), 0.12))
    assert torch.equal(out, x)


def test_a_sprite_moves_with_its_center_and_an_absent_object_draws_nothing():
    module = _sprites()
    w = torch.randn(1, 1, 8)
    x = torch.zeros(1, 3, 32, 32)
    sigma = torch.full((1, 1), 0.1)
    at = module(x, w, torch.tensor([[[0.40, 0.45]]]), sigma)
    moved = module(x, w, torch.tensor([[[0.40 + 5 / 32, 0.45 + 3 / 32]]]), sigma)
    assert at.abs().amax() > 0.1
    # 5 px right and 3 down: the same pixels, shifted (the sprite is ~0 at the crop's edges)
    assert torch.allclose(moved[..., 3:, 5:], at[..., :-3, :-5], atol=1e-5)
    assert not torch.allclose(moved, at, atol=1e-3)
    gone = module(x, w, torch.tensor([[[0.40, 0.45]]]), torch.zeros(1, 1))
    assert torch.equal(gone, x)


def test_the_gate_fades_what_lies_beneath_only_where_the_object_is():
    module = ObjectSprites(w_dim=8, channels=2, basis=4)
    with torch.no_grad():
        module.gate.fill_(1.0)
    x = torch.ones(1, 2, 32, 32)
    out = module(x, torch.randn(1, 1, 8), torch.tensor([[[16.5 / 32, 16.5 / 32]]]), torch.full((1, 1), 0.08))
    assert out[0, :, 16, 16].abs().max() < 1e-6  # under the center (pixel 16): faded away
    assert torch.allclose(out[0, :, 0, 0], x[0, :, 0, 0], atol=1e-3)  # far away: untouched


def test_a_generator_grown_with_sprites_draws_what_it_drew_until_they_learn():
    base = ARCHITECTURES["tiny-rooms-local"]
    grown = ARCHITECTURES["tiny-rooms-sprites"]
    assert grown.object_sprites and {k: v for k, v in grown.to_dict().items() if k != "object_sprites"} == {
        k: v for k, v in base.to_dict().items() if k != "object_sprites"}
    torch.manual_seed(0)
    g0 = Generator(base).eval()
    g1 = Generator(grown).eval()
    missing, unexpected = g1.load_state_dict(g0.state_dict(), strict=False)
    assert not unexpected and missing and all(name.startswith("sprites.") for name in missing)
    lat = g0.sample_latents(3, torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(g0(lat, noise_mode="const"), g1(lat, noise_mode="const"))
        g1.sprites["32"].coeffs.weight.normal_()
        assert not torch.equal(g0(lat, noise_mode="const"), g1(lat, noise_mode="const"))
    # sprites only where objects enter (objects_from = 16 px)
    assert sorted(g1.sprites.keys()) == ["16", "32"]


def test_sprites_get_gradients_from_the_picture():
    torch.manual_seed(0)
    g = Generator(ARCHITECTURES["tiny-rooms-sprites"])
    lat = g.sample_latents(2, torch.Generator().manual_seed(2))
    g(lat, noise_mode="const").square().mean().backward()
    for r in ("16", "32"):
        assert g.sprites[r].coeffs.weight.grad.abs().sum() > 0
        assert g.sprites[r].gate.grad.abs().sum() > 0


@pytest.mark.parametrize("value", [True, "16", 2.5])
def test_object_sprites_must_be_an_integer(value):
    from models.config import ConfigError

    data = {**ARCHITECTURES["tiny-rooms-sprites"].to_dict(), "object_sprites": value}
    with pytest.raises(ConfigError, match="object_sprites must be an integer"):
        GeneratorConfig.from_dict(data)


def test_an_object_with_its_own_style_hides_the_blocks_beneath_it():
    """objects_own_style: a block resampled under an object changes the style field there by
    (1 - the object's cover) of what it changes with the additive wiring."""
    from dataclasses import replace

    add = replace(ARCHITECTURES["tiny-rooms-sprites"], blocks_from=16)
    own = replace(add, objects_own_style=True)
    torch.manual_seed(0)
    g_add = Generator(add).eval()
    g_own = Generator(own).eval()
    g_own.load_state_dict(g_add.state_dict())
    lat = g_add.sample_latents(1, torch.Generator().manual_seed(3))
    other = replace(lat, z_blocks=torch.randn_like(lat.z_blocks))
    with torch.no_grad():
        d_add = g_add._w_fields(other, 1.0)[16] - g_add._w_fields(lat, 1.0)[16]
        d_own = g_own._w_fields(other, 1.0)[16] - g_own._w_fields(lat, 1.0)[16]
        cover = g_own.object_heatmaps(lat, 16).sum(dim=1, keepdim=True).clamp(max=1.0)
    assert d_add.abs().amax() > 0.1
    assert torch.allclose(d_own, d_add * (1 - cover), atol=1e-5)
    with pytest.raises(Exception, match="objects_own_style needs objects"):
        GeneratorConfig(resolution=16, channels={4: 8, 8: 8, 16: 4}, objects_own_style=True)
