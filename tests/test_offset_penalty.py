"""The size of the coarse MTM offsets as a G loss (losses.offset_size_penalty,
TrainConfig.offset_penalty): the 8 px offsets carried a resampled block into its neighbours."""
import dataclasses

import pytest
import torch

from models.config import ConfigError
from models.io.library import untrained_generator
from models.synthesis import capture_offsets
from models.training.configs import TRAINING_CONFIGS
from models.training.losses import offset_size_penalty
from models.training.trainer import Trainer


def _with_offsets(arch: str, bias: float):
    """An untrained generator whose MTM layers all offset by `bias` layer pixels."""
    G = untrained_generator(arch)
    with torch.no_grad():
        for m in G.modules():
            if getattr(m, "mtm", False):
                m.offset_bias.fill_(bias)
    return G


def test_penalty_is_the_mean_squared_offset_in_image_units():
    at8, at16 = torch.full((2, 18, 8, 8), 2.0), torch.full((2, 18, 16, 16), 2.0)
    assert float(offset_size_penalty({"8.0": at8}, 8)) == pytest.approx((2 / 8) ** 2)
    both = ((2 / 8) ** 2 + (2 / 16) ** 2) / 2
    assert float(offset_size_penalty({"8.0": at8, "16.0": at16}, 16)) == pytest.approx(both)
    with pytest.raises(ValueError, match="no MTM offset field at or below 8 px"):
        offset_size_penalty({"16.0": at16}, 8)


def test_only_the_layers_up_to_the_resolution_count_and_only_in_the_captured_pass():
    G = _with_offsets("rooms-cpu", 1.0)  # MTM at 8 and 16 px, two convolutions each
    lat = G.sample_latents(2, torch.Generator().manual_seed(0), "cpu")
    _, fields = capture_offsets(G, lambda: G(lat, noise_mode="const"))
    assert sorted(f.shape[-1] for f in fields.values()) == [8, 8, 16, 16]
    with torch.no_grad():  # the 16 px layers offset by 3: they must not count at 8 px
        for m in G.modules():
            if getattr(m, "mtm", False) and m.resolution == 16:
                m.offset_bias.fill_(3.0)
    _, fields = capture_offsets(G, lambda: G(lat, noise_mode="const"))
    G(lat, noise_mode="const")  # the hooks are gone: nothing more is recorded
    assert len(fields) == 4
    assert float(offset_size_penalty(fields, 8)) == pytest.approx((1 / 8) ** 2, rel=1e-5)  # untrained: bias only
    assert float(offset_size_penalty(fields, 16)) == pytest.approx(((1 / 8) ** 2 + (3 / 16) ** 2) / 2, rel=1e-5)


def test_descending_the_penalty_shrinks_the_offsets():
    G = _with_offsets("tiny-rooms", 1.5).requires_grad_(True)
    lat = G.sample_latents(4, torch.Generator().manual_seed(0), "cpu")
    opt = torch.optim.SGD([p for n, p in G.named_parameters() if "offset" in n], lr=20.0)
    first = None
    for _ in range(20):
        _, fields = capture_offsets(G, lambda: G(lat, noise_mode="const"))
        loss = offset_size_penalty(fields, 8)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first


def _biases_after_one_step(offset_penalty: float, folder: str) -> tuple[float, dict]:
    cfg = dataclasses.replace(TRAINING_CONFIGS["tiny-rooms-layout"], offset_penalty=offset_penalty)
    trainer = Trainer(cfg, folder, precision="fp32")
    mtm = [m for m in trainer.G.modules() if getattr(m, "mtm", False)]
    with torch.no_grad():
        for m in mtm:
            m.offset_bias.fill_(1.0)
    stats = trainer.train_step()
    return float(torch.cat([m.offset_bias.detach() for m in mtm]).mean()), stats


def test_trainer_adds_the_term_and_reports_it():
    """The same seed and state, one step with a heavy term and one without: only the first
    reports the term, and its offsets end up smaller."""
    with_term, stats = _biases_after_one_step(1000.0, "/tmp/steergan-test-offsets")
    without, plain_stats = _biases_after_one_step(0.0, "/tmp/steergan-test-offsets-off")
    assert float(stats["offsets"]) == pytest.approx((1 / 8) ** 2, rel=0.2)  # the bias, plus what the weights add
    assert "offsets" not in plain_stats
    assert with_term < 1.0 and with_term < without


@pytest.mark.parametrize("change, problem", [
    ({"offset_penalty": -1.0}, "offset_penalty must be"),
    ({"offset_penalty": 1.0, "offset_penalty_res": 4}, "no MTM layer at or below 4 px"),
])
def test_bad_settings_are_one_error_naming_them(change, problem):
    with pytest.raises(ConfigError, match=problem):
        dataclasses.replace(TRAINING_CONFIGS["rooms-cpu"], **change)
