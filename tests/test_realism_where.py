"""models/tools/realism_where.py: where the realism classifier finds the fakes."""
from __future__ import annotations

import pytest
import torch

from models.config import architecture
from models.nets.generator import Generator
from models.tools.realism_where import CROP, LUMA, chroma_lowpass, crops, main, realism_where


def test_colour_detail_goes_and_brightness_and_flat_colour_stay():
    x = torch.zeros(1, 3, 8, 8)
    x[:, 0, ::2, ::2] = 0.5  # a red-green flicker of equal brightness ...
    x[:, 1] = torch.where(x[:, 0] > 0, 0.0, 0.5 * 0.299 / 0.587)
    flat = torch.full((1, 3, 8, 8), 0.2) * torch.tensor([1.0, -0.5, 0.3]).view(1, 3, 1, 1)
    luma = lambda im: (im * LUMA).sum(dim=1)
    out = chroma_lowpass(x)
    assert torch.allclose(luma(out), luma(x), atol=1e-5)  # brightness kept pixel by pixel
    assert float((out - out.mean(dim=(2, 3), keepdim=True)).abs().max()) < 0.25 * float(
        (x - x.mean(dim=(2, 3), keepdim=True)).abs().max())  # ... mostly averaged away
    assert torch.allclose(chroma_lowpass(flat), flat, atol=1e-6)


def test_crops_take_the_heat_and_the_bare_room():
    images = torch.arange(64.0).view(1, 1, 1, 64).expand(1, 3, 64, 64).contiguous()
    heat = torch.zeros(1, 64, 64)
    heat[0, 30:40, 50:60] = 1.0  # an object at the right
    at_objects, bare = crops(images, heat)
    assert at_objects.shape == bare.shape == (1, 3, CROP, CROP)
    assert float(at_objects[0, 0, 0, 0]) >= 36 and float(bare[0, 0, 0, 0]) <= 24  # right and left columns


def test_an_untrained_generator_is_found_everywhere(tmp_path):
    torch.manual_seed(0)
    G = Generator(architecture("tiny-rooms")).eval()
    report = realism_where(G, samples=32, tests=1)
    assert set(report) >= {"as is", "colour detail removed", "16 px", "crops at objects", "crops of bare room"}
    assert all(0 <= v <= 1 for v in report.values())
    assert report["as is"] > 0.8  # colour noise against rooms


def test_figures_generators_and_bad_files_are_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match="rooms generator"):
        realism_where(Generator(architecture("tiny-figures")), samples=8, tests=1)
    bad = tmp_path / "x.safetensors"
    bad.write_text("no")
    assert main([str(bad)]) == 1
    assert str(bad) in capsys.readouterr().err
