"""Issue 23's colour term: G's batches matched to the real rooms' cell colours as a
distribution (losses.sliced_colour_loss, TrainConfig.colour_match)."""
import dataclasses

import pytest
import torch

from models.config import ConfigError
from models.data.rooms import render_rooms, sample_rooms
from models.metrics.colour import colour_cells
from models.training.configs import TRAINING_CONFIGS
from models.training.losses import sliced_colour_loss
from models.training.trainer import Trainer


@pytest.fixture(scope="module")
def rooms():
    rng = torch.Generator().manual_seed(0)
    bank = colour_cells(render_rooms(sample_rooms(512, 3, rng), 32).images)
    batch = render_rooms(sample_rooms(8, 3, rng), 32).images
    return bank, batch


def _mean_loss(cells, bank, draws=20):
    g = torch.Generator().manual_seed(1)
    return sum(float(sliced_colour_loss(cells, bank, g)) for _ in range(draws)) / draws


def test_one_wall_colour_scores_worse_than_real_variety(rooms):
    """The same 8 rooms, every one given the batch's mean colour at each place (their layout
    kept in a faint trace): what the projected runs drew. The term tells it from real rooms."""
    bank, batch = rooms
    real = _mean_loss(colour_cells(batch), bank)
    mean = batch.mean(dim=0, keepdim=True)
    collapsed = _mean_loss(colour_cells(mean + 0.05 * (batch - mean)), bank)
    assert collapsed > 2 * real


def test_descending_the_term_spreads_a_collapsed_batch(rooms):
    bank, batch = rooms
    mean = batch.mean(dim=0, keepdim=True)
    cells = colour_cells(mean + 0.05 * (batch - mean)).requires_grad_(True)
    spread_before = float(cells.detach().std(dim=0).mean())
    opt = torch.optim.SGD([cells], lr=2.0)
    g = torch.Generator().manual_seed(2)
    for _ in range(200):
        opt.zero_grad()
        sliced_colour_loss(cells, bank, g).backward()
        opt.step()
    assert float(cells.detach().std(dim=0).mean()) > 3 * spread_before
    assert float(cells.detach().std(dim=0).mean()) == pytest.approx(float(bank.std(dim=0).mean()), rel=0.5)


def test_trainer_adds_the_term_without_touching_the_data_stream(tmp_path):
    """The bank is drawn from its own seed: the data and latent stream (saved and resumed)
    is where it would be without the term, and the bank is the same in every run."""
    plain = TRAINING_CONFIGS["tiny-rooms-layout"]
    cfg = dataclasses.replace(plain, colour_match=100.0)
    with_term, without = Trainer(cfg, tmp_path / "a", device="cpu"), Trainer(plain, tmp_path / "b", device="cpu")
    assert torch.equal(with_term.rng.get_state(), without.rng.get_state())
    assert with_term._colour_bank is not None and without._colour_bank is None
    assert with_term._colour_bank.shape == (Trainer.COLOUR_BANK, 48)
    assert torch.equal(with_term._colour_bank, Trainer(cfg, tmp_path / "c", device="cpu")._colour_bank)
    stats = with_term.train_step()
    assert "colour" in stats and torch.isfinite(stats["colour"]) and float(stats["colour"]) > 0
    assert "colour" not in without.train_step()


def test_colour_match_settings_are_checked():
    with pytest.raises(ConfigError, match="colour_match must be"):
        dataclasses.replace(TRAINING_CONFIGS["tiny-rooms"], colour_match=-1.0)
    with pytest.raises(ConfigError, match="colour_match is not implemented for generators with time"):
        dataclasses.replace(TRAINING_CONFIGS["tiny-clips"], colour_match=1.0)
    assert TRAINING_CONFIGS["rooms-cpu-proj-colour"].colour_match > 0


def test_colour_cli_measures_checkpoints_and_names_a_bad_one(tmp_path, capsys):
    from models.config import architecture
    from models.io.checkpoint import save_checkpoint
    from models.metrics.colour import main
    from models.nets.generator import Generator

    torch.manual_seed(0)
    good = tmp_path / "tiny.safetensors"
    save_checkpoint(good, Generator(architecture("tiny-rooms")), {"name": "tiny"})
    assert main([str(good), "--samples", "8"]) == 0
    out = capsys.readouterr().out
    spread = float(out.split("colour spread ")[1].split()[0])
    real = float(out.split(" px: ")[1].rstrip(")\n"))
    assert 0 <= spread < 1 and 0.05 < real < 0.5
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint at all")
    assert main([str(bad)]) == 2
    assert str(bad) in capsys.readouterr().out


def test_the_term_is_float32_under_autocast(rooms):
    bank, batch = rooms
    cells = colour_cells(batch)
    plain = sliced_colour_loss(cells, bank, torch.Generator().manual_seed(4))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = sliced_colour_loss(cells, bank, torch.Generator().manual_seed(4))
    assert under.dtype == torch.float32 and torch.equal(under, plain)
