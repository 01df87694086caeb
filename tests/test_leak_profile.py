"""The leak profile (models/tools/leak_profile.py): an edit applied only from a resolution up."""
import torch

from models.config import architecture
from models.nets.generator import Generator
from models.tools.leak_profile import NEVER, block_leak, edit_only_from, main, move_leak


def _generator() -> Generator:
    torch.manual_seed(0)
    G = Generator(architecture("tiny-rooms"))
    G.update_w_avg(256)
    return G.eval().requires_grad_(False)


def test_an_edit_from_nowhere_changes_nothing_and_from_4_px_changes_the_picture():
    G = _generator()
    assert block_leak(G, NEVER, samples=16)["inside_levels"] == 0
    assert move_leak(G, NEVER, samples=16)["outside_levels"] == 0
    full = block_leak(G, 4, samples=16)
    assert full["inside_levels"] > 0.5 and full["outside_levels"] > 0
    assert move_leak(G, 4, samples=16)["outside_levels"] > 0


def test_edit_only_from_restores_the_generator():
    G = _generator()
    lat = G.sample_latents(2, torch.Generator().manual_seed(1))
    plain = G(lat, noise_mode="const")
    other = G.sample_latents(2, torch.Generator().manual_seed(2))
    with edit_only_from(G, other, 16):
        mixed = G(lat, noise_mode="const")
    assert not torch.equal(plain, mixed)
    assert torch.equal(G(lat, noise_mode="const"), plain)


def test_cli_refuses_a_generator_without_objects_and_grid(tmp_path, capsys):
    import pytest

    from models.io.checkpoint import save_checkpoint
    torch.manual_seed(0)
    path = tmp_path / "plain.safetensors"
    save_checkpoint(path, Generator(architecture("tiny-figures")), {"name": "plain", "architecture": "tiny-figures"})
    with pytest.raises(SystemExit):
        main([str(path)])
    assert "needs a generator with objects and a grid" in capsys.readouterr().err


def test_a_move_from_nowhere_moves_no_sprite_either():
    """The sprites (nets/sprites.py) take their centers from the wrapped generator too."""
    torch.manual_seed(0)
    G = Generator(architecture("tiny-rooms-sprites")).eval().requires_grad_(False)
    with torch.no_grad():
        for sprites in G.sprites.values():
            sprites.coeffs.weight.normal_()
    lat = G.sample_latents(2, torch.Generator().manual_seed(1))
    moved = G.sample_latents(2, torch.Generator().manual_seed(1))
    moved.centers = lat.centers + 0.1
    with edit_only_from(G, lat, NEVER):
        assert torch.equal(G(moved, noise_mode="const"), G(lat, noise_mode="const"))
    assert not torch.equal(G(moved, noise_mode="const"), G(lat, noise_mode="const"))
