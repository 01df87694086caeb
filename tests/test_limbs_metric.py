"""models/metrics/limbs.py: does a figures generator draw its arms, in the probe's eyes."""
from __future__ import annotations

import pytest
import torch

from models.config import architecture
from models.metrics.limbs import arm_coverage, figure_share, main, outer_arm_pixels
from models.metrics.probe import DEFAULT_PROBE, Probe, load_probe
from models.nets.generator import Generator


def _skeleton():
    """Upright, the upper body at (0.5, 0.3), the hands level with it at x = 0.2 and 0.8."""
    root = torch.tensor([[0.5, 0.5]])
    offsets1 = torch.tensor([[[0.0, -0.2], [0.0, 0.2]]])
    offsets2 = torch.tensor([[[-0.3, 0.0], [0.3, 0.0], [-0.1, 0.2], [0.1, 0.2]]])
    return root, offsets1, offsets2


def test_outer_arm_pixels_lie_on_the_arms_away_from_the_shoulder():
    where = outer_arm_pixels(*_skeleton(), 64)[0]
    rows, cols = where.nonzero(as_tuple=True)
    assert len(rows) > 20
    assert int(rows.min()) >= 17 and int(rows.max()) <= 20  # the arms' row (y = 0.3: 19.2 px)
    x = (cols.float() + 0.5) / 64
    # the outer 40 %: beyond 0.18 of the 0.3 from the upper body, both sides, up to the hands
    assert bool(((x - 0.5).abs() >= 0.18 - 1 / 64).all()) and bool(((x - 0.5).abs() <= 0.3 + 2 / 64).all())
    assert bool((x < 0.5).any()) and bool((x > 0.5).any())


class _Painter(Probe):
    """A stand-in probe that calls a pixel the figure where its red channel is high."""

    def forward(self, images):
        red = images[:, 0] * 20
        logits = torch.zeros(images.shape[0], len(self.classes), *images.shape[-2:])
        logits[:, self.classes.index("figure")] = red
        return logits, torch.zeros(images.shape[0], 1)


def test_figure_share_counts_only_the_asked_pixels():
    probe = _Painter(["background", "figure"])
    where = outer_arm_pixels(*_skeleton(), 64)
    blank = -torch.ones(1, 3, 64, 64)
    painted = blank.clone()
    painted[:, 0][where] = 1.0
    assert figure_share(probe, blank, where) < 0.01
    assert figure_share(probe, painted, where) > 0.99
    elsewhere = blank.clone()
    elsewhere[:, 0][~where] = 1.0  # the figure everywhere but on the arms
    assert figure_share(probe, elsewhere, where) < 0.01


def test_arm_coverage_of_a_tiny_generator_and_real_figures():
    torch.manual_seed(0)
    G = Generator(architecture("tiny-figures")).eval()
    probe, _ = load_probe(DEFAULT_PROBE)
    report = arm_coverage(G, probe, samples=16)
    assert set(report) == {"arms", "arms_real"}
    # the shipped probe sees real arms; an untrained generator draws none
    assert report["arms_real"] > 0.3 and report["arms"] < report["arms_real"] - 0.1


def test_rooms_generators_and_bad_files_are_refused(tmp_path, capsys):
    probe, _ = load_probe(DEFAULT_PROBE)
    with pytest.raises(ValueError, match="figures generator"):
        arm_coverage(Generator(architecture("tiny-rooms")), probe, samples=4)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    assert main([str(bad)]) == 1
    assert str(bad) in capsys.readouterr().err
