"""What the session-28 audit of the command line found: each bad value is now one error naming
it, before any work and with nothing the user had replaced."""
import json
import time

import pytest
import torch
from safetensors.torch import save_file
from test_relay import relay_env  # noqa: F401 (a fixture)

from app.cli import main
from models.config import ConfigError
from models.document.fileio import ExportError
from models.document.session import SessionError, load_session
from models.document.video_timing import check_target
from models.io.checkpoint import CheckpointError, read_info, save_checkpoint, store_metrics
from models.io.library import untrained_generator
from models.metrics.probe import load_probe
from models.training import relay
from models.training.configs import TRAINING_CONFIGS, training_config


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("bad-args") / "tiny.safetensors"
    save_checkpoint(path, untrained_generator("tiny-rooms"), {"name": "tiny"}, dtype=torch.float32)
    return path


def test_eval_json_never_replaces_the_checkpoint_or_a_non_json_file(ckpt, tmp_path, capsys):
    before = ckpt.read_bytes()
    assert main(["eval", str(ckpt), "--json", str(ckpt)]) == 2
    assert "must end in .json" in capsys.readouterr().err
    alias = tmp_path / "alias.json"
    alias.symlink_to(ckpt)  # a .json name that is the checkpoint itself
    assert main(["eval", str(ckpt), "--json", str(alias)]) == 2
    err = capsys.readouterr().err
    assert "alias.json" in err and "tiny.safetensors" in err and "replace" in err
    assert ckpt.read_bytes() == before


def test_store_metrics_refuses_a_checkpoint_that_changed_while_it_was_measured(ckpt, tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(ckpt.read_bytes())
    measured = read_info(path).sha256
    torch.manual_seed(1)  # another model shipped under the same name meanwhile
    save_checkpoint(path, untrained_generator("tiny-rooms"), {"name": "other"}, dtype=torch.float32)
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match="changed while it was being measured"):
        store_metrics(path, {"realism_accuracy": 0.5}, expect_sha256=measured)
    assert path.read_bytes() == before
    store_metrics(path, {"realism_accuracy": 0.5}, expect_sha256=read_info(path).sha256)  # unchanged: stored
    assert read_info(path).meta["metrics"] == {"realism_accuracy": 0.5}


@pytest.mark.parametrize("meta, tensors, problem", [
    ("{}", {"x": torch.zeros(1)}, "no list of class names"),
    ('{"classes": "abc"}', {"x": torch.zeros(1)}, "no list of class names"),
    ("[1", {"x": torch.zeros(1)}, "not a usable"),
    ('{"classes": ["background", "bed"]}', {"x": torch.zeros(1)}, "Missing key"),
])
def test_a_foreign_probe_is_one_error_naming_it(tmp_path, meta, tensors, problem):
    path = tmp_path / "probe.safetensors"
    save_file(tensors, str(path), metadata={"steergan_probe": meta})
    with pytest.raises(ValueError, match=problem) as info:
        load_probe(path)
    assert str(path) in str(info.value) and "not a usable SteerGAN metrics probe" in str(info.value)


@pytest.mark.parametrize("argv, problem", [
    (["render", "--arch", "tiny-rooms", "--seed", "-1", "-o", "x.png"], "--seed must be in [0, 2^31), got -1"),
    (["video", "--arch", "tiny-clips", "--seed", str(2**40), "--seconds", "1", "--fps", "4", "-o", "x.mp4"],
     "--seed must be in"),
    (["bench", "--arch", "tiny-plain", "--repeats", "0"], "--repeats must be at least 1, got 0"),
    # counted before the frames are (a 300-digit count), checked against the scene's latest time
    (["video", "--arch", "tiny-clips", "--seconds", "1e300", "--fps", "10", "-o", "x.mp4"],
     "--seconds 1e+300 at --fps 10 is more than 1,000,000 frames"),
    (["video", "--arch", "tiny-clips", "--seconds", "2", "--fps", "4", "--start", "2e9", "-o", "x.mp4"],
     "--start 2000000000 + --seconds 2 ends after 1e+09 s"),
    (["eval", "CKPT", "--realism-samples", "1"], "--realism-samples must be at least 8"),
])
def test_out_of_range_numbers_are_one_line_errors(ckpt, tmp_path, capsys, monkeypatch, argv, problem):
    monkeypatch.chdir(tmp_path)
    assert main([str(ckpt) if a == "CKPT" else a for a in argv]) == 2
    err = capsys.readouterr().err
    assert problem in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_gif_frame_longer_than_a_gif_can_hold_is_refused(tmp_path):
    with pytest.raises(ExportError, match="at least 0.0015 fps"):
        check_target(tmp_path / "slow.gif", 0.001)
    assert check_target(tmp_path / "slow.mp4", 0.001) == ".mp4"  # MP4 holds it


def test_a_session_naming_a_nul_path_is_refused(tmp_path):
    path = tmp_path / "nul.json"
    path.write_text(json.dumps({"format": "steergan-session", "version": 1,
                                "checkpoint": {"path": "a\u0000b", "sha256": None, "architecture": "tiny-rooms"},
                                "state": {}}))
    with pytest.raises(SessionError, match="NUL"):
        load_session(path)


def test_relay_start_checks_threads_and_from_before_starting(relay_env, tmp_path):  # noqa: F811
    with pytest.raises(relay.RelayError, match="--threads must be between 1 and 256, got 0"):
        relay.start(time.time() + 120, threads=0)
    junk = tmp_path / "notes.txt"
    junk.write_text("not a state")
    with pytest.raises(relay.RelayError, match="notes.txt: holds no warm state or training state"):
        relay.start(time.time() + 120, from_run=junk, threads=1)
    empty = tmp_path / "empty-run"
    empty.mkdir()
    with pytest.raises(relay.RelayError, match="empty-run: holds no warm state"):
        relay.start(time.time() + 120, from_run=empty, threads=1)
    assert not relay.running()


@pytest.mark.parametrize("change, problem", [
    ({"lr": "x"}, "lr must be a finite number, got 'x'"),
    ({"lr": float("nan")}, "lr must be a finite number"),
    ({"lr": -1}, "lr must be above 0, got -1"),
    ({"batch": 2.5}, "batch must be a whole number, got 2.5"),
    ({"d_rgb_heads": "no"}, "d_rgb_heads must be true or false"),
    ({"betas": [2, 5]}, "betas must be two numbers in [0, 1)"),
    ({"name": "../../escape"}, "name must be a plain file name"),
    ({"name": "/tmp/evil"}, "name must be a plain file name"),
    ({"name": 5}, "name must be a string, got 5"),
    ({"seed": "a"}, "seed must be a whole number"),
    ({"save_every_minutes": -1}, "save_every_minutes must be above 0"),
    ({"r1_gamma": -10}, "r1_gamma must be 0 or more"),
    ({"dataset": "bogus"}, "unknown dataset 'bogus'"),
])
def test_a_training_config_file_is_checked_field_by_field(tmp_path, change, problem):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({**TRAINING_CONFIGS["tiny-rooms"].to_dict(), **change}))
    with pytest.raises(ConfigError) as info:
        training_config(str(path))
    assert str(path) in str(info.value) and problem in str(info.value)


def test_every_built_in_config_passes_its_own_checks_through_json(tmp_path):
    for name, config in TRAINING_CONFIGS.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(config.to_dict()))
        assert training_config(str(path)) == config


def test_render_out_of_gpu_memory_renders_on_the_cpu_and_says_so(tmp_path, capsys, monkeypatch):
    """No GPU here: check_device lets "cuda" through and opening on it runs out of memory, as a
    full GPU would; the image is then the CPU's, byte for byte."""
    import app.cli as cli

    opened = cli._open

    def open_on(checkpoint, arch, device):
        if device != "cpu":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return opened(checkpoint, arch, device)

    monkeypatch.setattr(cli, "check_device", lambda value: value)
    monkeypatch.setattr(cli, "_open", open_on)
    gpu, cpu = tmp_path / "gpu.png", tmp_path / "cpu.png"
    assert main(["render", "--arch", "tiny-rooms", "--seed", "4", "--device", "cuda", "-o", str(gpu)]) == 0
    assert "cuda ran out of memory; rendering on the CPU instead" in capsys.readouterr().err
    assert main(["render", "--arch", "tiny-rooms", "--seed", "4", "-o", str(cpu)]) == 0
    assert gpu.read_bytes() == cpu.read_bytes()
