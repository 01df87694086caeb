"""The move report (models/tools/move_report.py): tracked co-move's failures told apart."""
import torch

from models.config import architecture
from models.io.checkpoint import save_checkpoint
from models.metrics import tracked as T
from models.nets.generator import Generator
from models.tools.move_report import breakdown, departure, main


def test_departure_is_zero_where_nothing_changed_and_about_two_where_the_object_left():
    g = torch.Generator().manual_seed(0)
    before = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    centers = torch.tensor([[0.5, 0.5], [0.3, 0.6]])
    assert torch.allclose(departure(before, before.clone(), centers), torch.zeros(2))
    # the patch replaced by an independent one of the same spread: change = twice the variance
    after = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    assert ((departure(before, after, centers) - 2).abs() < 0.6).all()


def test_on_the_renderer_the_moved_object_is_found_where_it_went_and_never_stays():
    r = breakdown(T.renderer_move_images(64, 64, seed=0))
    assert r["moves"] == 64
    assert r["tracked"] <= r["found"] <= min(r["near_new"], r["residual_ok"])
    assert r["near_new"] > 0.6 and r["stayed"] < 0.1 and r["residual_median"] < 0.5
    # a "generator" that ignores the handle: the same picture after every move
    still = breakdown((b, b.clone(), c, d) for b, _, c, d in T.renderer_move_images(64, 64, seed=0))
    assert still["found"] == 0 and still["departure_median"] == 0 and still["outside_levels"] == 0
    assert still["stayed"] > r["stayed"]


def test_the_cli_reports_a_model_and_the_renderer_and_names_a_bad_file(tmp_path, capsys):
    torch.manual_seed(0)
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(path, Generator(architecture("tiny-rooms")), {"name": "tiny", "architecture": "tiny-rooms"})
    assert main([str(path), "--samples", "16", "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "renderer" in out and "near_new" in out and str(path) in out
    import json

    r = json.loads((tmp_path / "r.json").read_text())
    assert set(r) == {str(path), "renderer"} and r[str(path)]["moves"] == 16
    assert all(0 <= r[str(path)][k] <= 1 for k in ("tracked", "found", "near_new", "residual_ok", "stayed"))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    assert main([str(bad)]) == 2
    assert "bad.safetensors" in capsys.readouterr().err
