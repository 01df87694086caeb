"""models/training/compare_states.py: comparison runs measured side by side."""
import json

import torch
from PIL import Image

from models.config import architecture
from models.io.checkpoint import save_checkpoint
from models.nets.generator import Generator
from models.training.compare_states import main, off_line_median, real_off_line_median
from models.training.configs import TRAINING_CONFIGS
from models.training.gpu_worker import WarmTrainer


def test_warm_states_and_checkpoints_side_by_side(tmp_path, capsys):
    torch.manual_seed(0)
    ckpt = tmp_path / "tiny.safetensors"
    save_checkpoint(ckpt, Generator(architecture("tiny-rooms")), {"name": "tiny", "architecture": "tiny-rooms"})
    trainer = WarmTrainer(TRAINING_CONFIGS["tiny-rooms-layout"], tmp_path / "run", "cpu",
                          state_out=tmp_path / "state.safetensors")
    trainer.train_step()
    trainer.save()
    out = tmp_path / "cmp"
    assert main([f"a={ckpt}", f"b={tmp_path / 'state.safetensors'}", "--out", str(out),
                 "--samples", "16", "32", "32"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"a", "b", "_real"}
    assert metrics["b"]["images"] == trainer.images_seen
    for name in ("a", "b"):
        assert 0 <= metrics[name]["realism_accuracy"] <= 1 and metrics[name]["off_line_median"] >= 0
        assert 0 <= metrics[name]["kind_accuracy"] <= 1 and metrics[name]["kinds_told"] is False
    res = architecture("tiny-rooms").resolution
    assert Image.open(out / "sheet.png").size == (8 * res * 2, 3 * res * 2)  # two models + real, 8 each
    assert Image.open(out / "kinds.png").size == (12 * res * 2, 2 * res * 2)  # two layouts x six kinds a model
    assert (out / "b.safetensors").exists()  # the warm state's EMA generator as a checkpoint
    assert "a {" in capsys.readouterr().out


def test_speckle_of_an_untrained_generator_is_above_the_real_rooms():
    """An untrained G draws colour noise: its patches stray from one colour line far more
    than real rooms' (32 px here, where real patterns are denser than at 64 px: 0.03)."""
    torch.manual_seed(0)
    G = Generator(architecture("tiny-rooms")).eval()
    fake, images = off_line_median(G, samples=64)
    real, real_images = real_off_line_median(G, samples=64)
    assert images.shape[0] == 8 and real_images.shape[0] == 8
    assert real < 0.05 and fake > 3 * real


def test_bad_arguments_and_files_are_named(tmp_path, capsys):
    assert main(["nameless"]) == 2
    assert "'nameless' is not NAME=PATH" in capsys.readouterr().err
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    assert main([f"x={bad}", "--out", str(tmp_path / "o")]) == 1
    assert "bad.safetensors" in capsys.readouterr().err


def test_a_file_with_a_comma_in_its_name_is_one_model(tmp_path):
    """NAME=P1,P2 lists warm states to average; a path that names an existing file is that
    file, commas in its name or not (split, its parts would be "no such file")."""
    torch.manual_seed(0)
    ckpt = tmp_path / "rooms,b.safetensors"
    save_checkpoint(ckpt, Generator(architecture("tiny-rooms")), {"name": "tiny", "architecture": "tiny-rooms"})
    out = tmp_path / "cmp"
    assert main([f"c={ckpt}", "--out", str(out), "--samples", "16", "32", "32"]) == 0
    assert set(json.loads((out / "metrics.json").read_text())) == {"c", "_real"}


def test_figures_generators_get_their_arms_measured(tmp_path):
    torch.manual_seed(0)
    ckpt = tmp_path / "fig.safetensors"
    save_checkpoint(ckpt, Generator(architecture("tiny-figures")), {"name": "fig", "architecture": "tiny-figures"})
    out = tmp_path / "cmp"
    assert main([f"fig={ckpt}", "--out", str(out), "--samples", "16", "32", "32"]) == 0
    row = json.loads((out / "metrics.json").read_text())["fig"]
    assert 0 <= row["arms"] < row["arms_real"] <= 1


def test_several_warm_states_are_averaged_and_a_foreign_one_is_named(tmp_path):
    """NAME=P1,P2: the checkpoint's weights are the mean of the states' EMA generators
    (Polyak averaging over a run's saves); a state of another architecture is refused by name."""
    import pytest

    from models.io.checkpoint import load_checkpoint
    from models.training.relay import RelayError, checkpoint_from_warm_state
    from models.training.state import load_warm_state

    torch.manual_seed(0)
    trainer = WarmTrainer(TRAINING_CONFIGS["tiny-rooms-layout"], tmp_path / "run", "cpu",
                          state_out=tmp_path / "s1.safetensors")
    trainer.train_step()
    trainer.save()
    for _ in range(3):
        trainer.train_step()
    trainer.state_out = tmp_path / "s2.safetensors"
    trainer.save()
    emas = [load_warm_state(tmp_path / f"s{i}.safetensors")[0]["G_ema"] for i in (1, 2)]
    changed = [k for k in emas[0] if emas[0][k].is_floating_point() and not torch.equal(emas[0][k], emas[1][k])]
    assert changed  # the two saves differ, so the mean is a third set of weights

    out, info = checkpoint_from_warm_state("avg", [tmp_path / "s1.safetensors", tmp_path / "s2.safetensors"],
                                           tmp_path / "avg.safetensors")
    G, ck = load_checkpoint(out)
    weights = G.state_dict()
    for key in changed:
        torch.testing.assert_close(weights[key].float(), (emas[0][key] + emas[1][key]) / 2, rtol=1e-3, atol=1e-3)
    assert ck.meta["trained_on"]["averaged_states"] == 2 and ck.meta["trained_on"]["images"] == trainer.images_seen

    other = WarmTrainer(TRAINING_CONFIGS["tiny-figures-layout"], tmp_path / "run2", "cpu",
                        state_out=tmp_path / "fig.safetensors")
    other.save()
    with pytest.raises(RelayError, match="fig.safetensors"):
        checkpoint_from_warm_state("x", [tmp_path / "s1.safetensors", tmp_path / "fig.safetensors"],
                                   tmp_path / "x.safetensors")
