"""Session 18: G's object patches must mix their colours along one line, as real objects' do
(losses.off_line_colour, texture_patches, quantile_gap; TrainConfig.chroma_match)."""
import dataclasses

import pytest
import torch

from models.config import ConfigError
from models.data.rooms import render_rooms, sample_rooms
from models.training.configs import TRAINING_CONFIGS
from models.training.losses import off_line_colour, quantile_gap, texture_patches
from models.training.trainer import Trainer


def _patch(colours: torch.Tensor) -> torch.Tensor:
    """[16, 3] pixel colours in [0, 1] units -> one centred texture_patches row."""
    x = colours.T.reshape(3, 16)
    return (x - x.mean(dim=1, keepdim=True)).flatten()[None]


def test_two_flat_colours_lie_on_a_line_and_a_rainbow_does_not():
    red, blue = torch.tensor([0.5, -0.3, -0.3]), torch.tensor([-0.3, -0.3, 0.5])
    checker = torch.stack([red if (i + i // 4) % 2 else blue for i in range(16)])
    flat = red.expand(16, 3)
    hue = torch.linspace(0, 6.28, 16)
    rainbow = 0.4 * torch.stack([hue.cos(), (hue + 2.09).cos(), (hue + 4.19).cos()], dim=1)
    values = off_line_colour(torch.cat([_patch(flat), _patch(checker), _patch(rainbow)]))
    assert values[0] < 1e-3 and values[1] < 1e-3
    assert values[2] > 0.1


def _speckle(images: torch.Tensor, seed: int) -> torch.Tensor:
    """Every pixel's colour pushed off its neighbours' in a random direction of hue."""
    g = torch.Generator().manual_seed(seed)
    return (images + 0.3 * torch.randn(images.shape, generator=g)).clamp(-1, 1)


def test_patches_drawn_at_objects_and_real_rooms_score_below_speckled_ones():
    g = torch.Generator().manual_seed(0)
    scenes = render_rooms(sample_rooms(256, 3, g), 32)
    where = torch.zeros(256, 32, 32)
    where[:, 10, 22] = 1.0  # every patch centred here: rows 8-11, columns 20-23
    marked = scenes.images.clone()
    marked[:, :, 8:12, 20:24] = torch.linspace(-1, 1, 16).view(4, 4)  # the same ramp in every image
    picked = texture_patches(marked, 4, g, where)
    assert picked.shape == (1024, 48)
    assert torch.allclose(picked, picked[:1].expand(1024, -1)) and picked.abs().max() > 0.3
    anywhere = texture_patches(marked, 1, g)  # without a weight: uniform
    assert not torch.allclose(anywhere, anywhere[:1].expand_as(anywhere))
    bank = off_line_colour(texture_patches(scenes.images, 16, g))[:, None].sort(dim=0).values
    real = render_rooms(sample_rooms(16, 3, g), 32).images
    for seed in range(3):
        ours = quantile_gap(off_line_colour(texture_patches(real, 64, g))[:, None], bank)
        theirs = quantile_gap(off_line_colour(texture_patches(_speckle(real, seed), 64, g))[:, None], bank)
        assert theirs > 5 * ours


def test_patch_draws_follow_the_weight_and_an_empty_weight_draws_anywhere():
    """The weighted draw (an inverse CDF on the images' device) picks places in proportion."""
    g = torch.Generator().manual_seed(2)
    image = torch.rand(1, 3, 16, 16, generator=g).expand(2, -1, -1, -1)  # every patch differs
    where = torch.zeros(2, 16, 16)
    where[:, 5, 5], where[:, 10, 9] = 1.0, 3.0  # two patch centres, weights 1 and 3
    rows = texture_patches(image, 4000, g, where)
    kinds, counts = rows.unique(dim=0, return_counts=True)
    assert len(kinds) == 2
    assert 0.2 < counts.min().item() / 8000 < 0.3  # weight 1 of 4
    empty = texture_patches(image, 4000, g, torch.zeros(2, 16, 16))  # no objects: anywhere
    assert len(empty.unique(dim=0)) > 150  # of 13 x 13 places


def test_descending_the_term_takes_the_speckle_out():
    g = torch.Generator().manual_seed(1)
    real = render_rooms(sample_rooms(64, 3, g), 32).images
    bank = off_line_colour(texture_patches(real, 64, g))[:, None].sort(dim=0).values
    images = _speckle(render_rooms(sample_rooms(8, 3, g), 32).images, 0).requires_grad_(True)
    opt = torch.optim.Adam([images], lr=0.01)
    before = off_line_colour(texture_patches(images.detach(), 128, torch.Generator().manual_seed(9))).median()
    for _ in range(60):
        opt.zero_grad()
        quantile_gap(off_line_colour(texture_patches(images, 128, g))[:, None], bank).backward()
        opt.step()
    after = off_line_colour(texture_patches(images.detach(), 128, torch.Generator().manual_seed(9))).median()
    assert after < 0.5 * before


def test_trainer_draws_a_fixed_bank_and_the_term_enters_g_step(tmp_path):
    cfg = dataclasses.replace(TRAINING_CONFIGS["tiny-rooms-layout"], chroma_match=1000.0)
    trainer = Trainer(cfg, tmp_path / "a", device="cpu")
    assert trainer._chroma_bank is not None
    assert trainer._chroma_bank.shape == (Trainer.COLOUR_BANK * Trainer.CHROMA_PATCHES, 1)
    assert torch.equal(trainer._chroma_bank, Trainer(cfg, tmp_path / "b", device="cpu")._chroma_bank)
    assert bool((trainer._chroma_bank[1:] >= trainer._chroma_bank[:-1]).all())  # sorted
    stats = trainer.train_step()
    assert "chroma" in stats and torch.isfinite(stats["chroma"])
    assert Trainer(TRAINING_CONFIGS["tiny-rooms-layout"], tmp_path / "c", device="cpu")._chroma_bank is None
    with pytest.raises(ConfigError, match="chroma_match must be 0"):
        dataclasses.replace(cfg, chroma_match=-1.0)
    with pytest.raises(ConfigError, match="chroma_match is not implemented for generators with time"):
        dataclasses.replace(TRAINING_CONFIGS["tiny-clips"], chroma_match=1.0)


def test_patches_are_drawn_at_a_figures_parts_and_the_term_trains_figures(tmp_path):
    """A hierarchical generator's patches are drawn at its figure (the levels' heatmaps), real
    and generated alike; latents with no layout draw anywhere."""
    from models.nets.generator import Latents
    from models.training.losses import patch_weight

    cfg = dataclasses.replace(TRAINING_CONFIGS["tiny-figures-layout"], chroma_match=1000.0)
    trainer = Trainer(cfg, tmp_path / "f", device="cpu")
    batch = trainer.data.sample(4, torch.Generator().manual_seed(0))
    lat = trainer._real_layout(batch)
    size = batch.images.shape[-1]
    where = patch_weight(lat, size)
    assert where is not None and where.shape == (4, size, size)
    for i in range(4):  # brightest at the figure's root, near nothing in the far corner from it
        x, y = (lat.root[i] * size).long().clamp(0, size - 1).tolist()
        assert where[i, y, x] > 0.5
        far = [size - 1 if v < size // 2 else 0 for v in (y, x)]
        assert where[i, far[0], far[1]] < 0.1
    assert patch_weight(Latents(z_global=torch.zeros(2, 1)), size) is None
    assert "chroma" in trainer.train_step()
