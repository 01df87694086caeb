"""The level sheet (models/tools/level_sheet.py): what each level of the synthesis draws."""
from __future__ import annotations

import torch
from PIL import Image

from models.config import architecture
from models.io.checkpoint import save_checkpoint
from models.nets.generator import Generator
from models.tools.level_sheet import level_rows, main


def test_the_rows_are_the_levels_the_full_image_and_the_finest_levels_addition():
    torch.manual_seed(0)
    G = Generator(architecture("tiny-rooms")).eval()
    rows = level_rows(G, [8, 16], samples=3, seed=1)
    assert rows.shape == (4, 3, 3, 32, 32)
    lat = G.sample_latents(3, torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = G(lat, noise_mode="const")
        at16 = G(lat, noise_mode="const", stop_at=16)
    torch.testing.assert_close(rows[2], full)
    # a 16 px row is the 16 px image, each pixel a 2x2 block
    torch.testing.assert_close(rows[1][:, :, ::2, ::2], at16)
    assert torch.equal(rows[1][:, :, ::2, ::2], rows[1][:, :, 1::2, 1::2])
    # the addition: the full image less the 16 px image upsampled smoothly, doubled
    smooth = torch.nn.functional.interpolate(at16, size=32, mode="bilinear", align_corners=False)
    torch.testing.assert_close(rows[3], (full - smooth) * 2)


def test_the_cli_writes_the_sheet_and_names_bad_input(tmp_path, capsys):
    ckpt = tmp_path / "tiny.safetensors"
    save_checkpoint(ckpt, Generator(architecture("tiny-rooms")), {"name": "tiny", "architecture": "tiny-rooms"})
    out = tmp_path / "sheet.png"
    assert main([str(ckpt), str(out), "--levels", "8", "16", "--samples", "2"]) == 0
    assert Image.open(out).size == (2 * 32 * 2, 4 * 32 * 2)
    assert main([str(ckpt), str(tmp_path / "x.png"), "--levels", "32"]) == 2
    assert "--levels [32]" in capsys.readouterr().err
    assert main([str(ckpt), str(tmp_path / "no-folder" / "x.png")]) == 2
    assert "no-folder" in capsys.readouterr().err
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    assert main([str(bad), str(out)]) == 2
    assert "bad.safetensors" in capsys.readouterr().err
