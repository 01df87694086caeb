"""The parts metric (models/metrics/parts.py): a fresh segmenter of the figures' parts, and
how often it sees each part of G's figures where the skeleton fixes it."""
from __future__ import annotations

import pytest
import torch

from models.config import ARCHITECTURES
from models.data.figure_parts import part_regions
from models.data.figures import HEAD, PARTS, TORSO, render_figures, sample_figures, skeleton_hierarchy
from models.metrics.parts import main, part_accuracy, region_accuracy
from models.nets.generator import Generator


class _Oracle(torch.nn.Module):
    """A 'segmenter' that answers with a given part map."""

    def __init__(self, parts: torch.Tensor):
        super().__init__()
        self.parts = parts

    def forward(self, images):
        return torch.nn.functional.one_hot(self.parts, 1 + len(PARTS)).permute(0, 3, 1, 2).float()


def test_region_accuracy_counts_the_pixels_seen_as_the_part_asked():
    real = render_figures(sample_figures(8, torch.Generator().manual_seed(2)), 64)
    regions, parts = part_regions(*skeleton_hierarchy(real.keypoints), 64)
    right = region_accuracy(_Oracle(real.parts), real.images, regions, parts)
    asked_head = sum(int(regions[:, i].sum()) for i, p in enumerate(parts) if p == HEAD)
    assert right[HEAD][1] == asked_head and right[HEAD][0] > 0.9 * asked_head
    # every pixel called torso: the torso regions all right, the head's all wrong
    torso = region_accuracy(_Oracle(torch.full_like(real.parts, TORSO)), real.images, regions, parts)
    assert torso[TORSO][0] == torso[TORSO][1] > 0 and torso[HEAD][0] == 0


def test_the_fresh_segmenter_sees_real_parts_and_a_blank_generator_draws_none():
    torch.manual_seed(0)
    report = part_accuracy(Generator(ARCHITECTURES["tiny-figures"]).eval(), samples=32, train_images=384)
    assert set(PARTS) <= set(report) and {f"{p}_real" for p in PARTS} <= set(report)
    assert report["part_accuracy_real"] > 0.5  # chance among five classes is 0.2
    assert report["part_accuracy"] < report["part_accuracy_real"]  # an untrained G draws colour noise
    assert report["part_accuracy"] == pytest.approx(sum(report[p] for p in PARTS) / len(PARTS))
    with pytest.raises(ValueError, match="needs a figures generator"):
        part_accuracy(Generator(ARCHITECTURES["tiny-rooms"]).eval(), samples=8)


def test_the_command_names_a_bad_checkpoint(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    assert main([str(bad)]) == 1
    assert str(bad) in capsys.readouterr().err
