"""`steergan render` and friends, end to end."""
import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from app.cli import main
from models.document.scene import initial_state
from models.document.session import CheckpointRef, save_session
from models.io.checkpoint import save_checkpoint
from models.io.library import untrained_generator
from models.render import render


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    g = untrained_generator("tiny-rooms")
    path = tmp_path_factory.mktemp("cli") / "tiny.safetensors"
    save_checkpoint(path, g, {"name": "tiny", "trained_on": {"dataset": "none (test)"}}, dtype=torch.float32)
    return g, path


def test_render_checkpoint_equals_render_of_state(ckpt, tmp_path, capsys):
    g, path = ckpt
    out = tmp_path / "out.png"
    assert main(["render", "--checkpoint", str(path), "--seed", "3", "-o", str(out)]) == 0
    expect = render(g, initial_state(g.config, 3)).image
    assert np.array_equal(np.asarray(Image.open(out)), expect)
    assert "wrote" in capsys.readouterr().out


def test_render_session_offsets_and_size(ckpt, tmp_path):
    g, path = ckpt
    state = initial_state(g.config, 8).move_center(0, 1, (0.2, 0.2))
    session = tmp_path / "s.json"
    save_session(session, state, CheckpointRef(str(path), None))
    out = tmp_path / "s.webp"
    assert main(["render", "--session", str(session), "--offsets", "off", "--size", "64", "-o", str(out)]) == 0
    img = Image.open(out)
    assert img.size == (64, 64) and img.format == "WEBP"
    out2 = tmp_path / "s.png"
    assert main(["render", "--session", str(session), "-o", str(out2)]) == 0
    assert np.array_equal(np.asarray(Image.open(out2)), render(g, state).image)


def test_render_errors_are_clear_and_exit_2(ckpt, tmp_path, capsys):
    _, path = ckpt
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage" * 10)
    assert main(["render", "--checkpoint", str(bad), "-o", str(tmp_path / "x.png")]) == 2
    assert "bad.safetensors" in capsys.readouterr().err
    assert main(["render", "--checkpoint", str(path), "-o", str(tmp_path / "no/such/dir/x.png")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["render", "--checkpoint", str(path), "-o", str(tmp_path / "x.tiff")]) == 2
    assert "unknown image type" in capsys.readouterr().err
    if os.geteuid() != 0:  # root can write anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        assert main(["render", "--checkpoint", str(path), "-o", str(ro / "x.png")]) == 2
        assert "cannot write" in capsys.readouterr().err


def test_untrained_default_says_so(tmp_path, capsys):
    out = tmp_path / "u.png"
    assert main(["render", "--arch", "tiny-figures", "-o", str(out)]) == 0
    assert "untrained" in capsys.readouterr().err
    assert Image.open(out).size == (32, 32)


def test_info_prints_json(ckpt, capsys):
    assert main(["info", str(ckpt[1])]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "tiny" and info["format_version"] == 1


def test_reader_that_leaves_is_not_an_error(ckpt, monkeypatch, capsys):
    """`steergan info X | head -c 1`: the pipe closes under the writer; before, one line
    'error: Broken pipe' per call (session 26, `relay status | grep -q`)."""
    class GoneReader:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

    monkeypatch.setattr("sys.stdout", GoneReader())
    assert main(["info", str(ckpt[1])]) == 0
    assert "error" not in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(os, "pipe") or sys.platform != "linux", reason="poll's POLLERR on a pipe is Linux's")
def test_closed_stdout_pipe_is_quiet_but_another_broken_pipe_is_reported(ckpt, monkeypatch, capsys):
    """A real pipe: its reader closed, `info` ends quietly with 0; its reader still there, a
    broken pipe from elsewhere (an encoder that died) is an error, not a quiet success."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    with os.fdopen(write_end, "w", buffering=1) as gone:  # line-buffered: the write itself breaks
        monkeypatch.setattr("sys.stdout", gone)
        assert main(["info", str(ckpt[1])]) == 0
        assert "error" not in capsys.readouterr().err
        monkeypatch.undo()

    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "w") as open_pipe, os.fdopen(read_end, "r"):
        monkeypatch.setattr("sys.stdout", open_pipe)

        def encoder_died(args):
            raise BrokenPipeError(32, "Broken pipe", "clip.mp4")

        monkeypatch.setattr("app.cli.cmd_info", encoder_died)
        assert main(["info", str(ckpt[1])]) == 2
        assert "clip.mp4: Broken pipe" in capsys.readouterr().err


def test_bench_prints_json(capsys):
    assert main(["bench", "--arch", "tiny-plain", "--repeats", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["results"]["tiny-plain"]["cpu_ms_median"] > 0 and out["machine"]["cpu_count"] >= 1


@pytest.mark.skipif(shutil.which("steergan") is None, reason="console script not installed")
def test_console_script_renders(tmp_path):
    out = tmp_path / "cli.png"
    res = subprocess.run(["steergan", "render", "--arch", "tiny-plain", "-o", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert Image.open(out).size == (16, 16)


def test_render_threads_leave_a_core_for_the_gui_unless_told(monkeypatch):
    from app import cpu_threads
    from app.studio import configure_render_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr(cpu_threads, "load_average", lambda: 0.0)  # an idle machine
    configure_render_threads()
    assert os.environ["OMP_NUM_THREADS"] == str(max(1, cpu_threads.available_cpus() - 1))
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(cpu_threads, "load_average", lambda: 99.0)  # busier than its cores
    configure_render_threads()
    assert os.environ["OMP_NUM_THREADS"] == "1"
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    configure_render_threads()
    assert os.environ["OMP_NUM_THREADS"] == "7"  # the user's choice wins


def test_train_through_the_cli_then_resume(tmp_path, capsys):
    """`steergan train` end to end on a tiny config: a checkpoint and a state that resumes."""
    from models.io.checkpoint import load_checkpoint

    run = tmp_path / "run"
    assert main(["train", "tiny-figures", "--steps", "1", "--out", str(run), "--device", "cpu"]) == 0
    assert "saved" in capsys.readouterr().err
    g, info = load_checkpoint(run / "tiny-figures.safetensors")
    assert info.meta["trained_on"]["steps"] == 1 and info.meta["architecture"] == "tiny-figures"
    assert main(["train", "tiny-figures", "--steps", "2", "--out", str(run), "--resume", str(run)]) == 0
    assert "(step 1)" in capsys.readouterr().err  # it went on from the saved step
    assert load_checkpoint(run / "tiny-figures.safetensors")[1].meta["trained_on"]["steps"] == 2
    assert not list(run.glob(".*.part"))


def test_train_from_a_warm_state_under_other_loss_settings(tmp_path, capsys):
    """`steergan train --warm-start`: a comparison from the relay's model. The weights and the
    images seen carry over, the loss settings are the new config's, and the result is a warm
    state and a checkpoint; a state of another architecture or both starts at once are refused."""
    import dataclasses

    from models.io.checkpoint import load_checkpoint
    from models.training.configs import training_config
    from models.training.gpu_worker import WarmTrainer
    from models.training.state import load_warm_state

    start = tmp_path / "start" / "state.safetensors"
    WarmTrainer(training_config("tiny-rooms-layout"), start.parent, "cpu", state_out=start).run(max_steps=1)
    g_start = load_warm_state(start)[0]["G"]
    moved = dataclasses.replace(training_config("tiny-rooms-layout"), name="tiny-moved", move_weight=10.0,
                                move_every=1)
    config = tmp_path / "moved.json"
    config.write_text(json.dumps(moved.to_dict()))
    run = tmp_path / "run"
    assert main(["train", str(config), "--warm-start", str(start), "--steps", "1", "--out", str(run),
                 "--device", "cpu"]) == 0
    assert "(step 1, 4 images)" in capsys.readouterr().err
    g, info = load_checkpoint(run / "tiny-moved.safetensors")
    assert info.meta["trained_on"]["images"] == 8 and info.meta["trained_on"]["steps"] == 2
    assert info.meta["trained_on"]["training_config"]["move_weight"] == 10.0
    modules, state_info = load_warm_state(run / "state.safetensors")
    assert state_info["images_seen"] == 8
    changed = [k for k in g_start if not torch.equal(g_start[k], modules["G"][k])]
    assert changed  # it trained from the start's weights (same names, shapes), and moved them
    with open(run / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows[-1]["step"] == "2" and float(rows[-1]["move"]) > 0  # the new config's term ran
    for argv, needle in ((["tiny-figures-layout", "--warm-start", str(start)], "architecture='tiny-rooms'"),
                         (["tiny-rooms-layout", "--warm-start", str(start), "--resume", str(run)], "exclude"),
                         (["tiny-rooms-layout", "--warm-start", str(tmp_path / "nope")], "no such file")):
        assert main(["train", *argv, "--steps", "1", "--out", str(tmp_path / "x"), "--device", "cpu"]) != 0
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1, err


def test_warm_start_with_a_fresh_d_takes_g_only(tmp_path, capsys):
    """`--warm-start STATE --fresh-d`: another D design on a trained G. G's weights come from
    the state even when the state's D is of another recipe; D is the config's own, new."""
    from models.training.configs import training_config
    from models.training.gpu_worker import WarmTrainer
    from models.training.state import load_warm_state

    start = tmp_path / "start" / "state.safetensors"
    WarmTrainer(training_config("tiny-rooms-projected"), start.parent, "cpu", state_out=start).run(max_steps=1)
    assert main(["train", "tiny-rooms-layout", "--warm-start", str(start), "--out", str(tmp_path / "x"),
                 "--steps", "1", "--device", "cpu"]) != 0  # without --fresh-d the recipes must match
    assert "recipe='projected'" in capsys.readouterr().err
    trainer = WarmTrainer(training_config("tiny-rooms-layout"), tmp_path / "y", "cpu")
    d_before = {k: v.clone() for k, v in trainer.D.state_dict().items()}
    trainer.warm_start(start, fresh_d=True)
    modules = load_warm_state(start)[0]
    assert all(torch.equal(v, modules["G"][k]) for k, v in trainer.G.state_dict().items())
    assert all(torch.equal(v, d_before[k]) for k, v in trainer.D.state_dict().items())
    assert trainer.images_seen == 4
    run = tmp_path / "run"
    assert main(["train", "tiny-rooms-layout", "--warm-start", str(start), "--fresh-d", "--out", str(run),
                 "--steps", "1", "--device", "cpu"]) == 0
    assert load_warm_state(run / "state.safetensors")[1]["images_seen"] == 8
    assert main(["train", "tiny-rooms-layout", "--fresh-d", "--steps", "1", "--out", str(run)]) != 0
    assert "--fresh-d goes with --warm-start" in capsys.readouterr().err


def _tensor_bytes(path):
    """Each tensor's raw bytes, by name (the weights, whatever the header says)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k).reshape(-1).view(torch.uint8).numpy().tobytes() for k in f.keys()}


def test_eval_store_rewrites_atomically_with_identical_weights(ckpt, tmp_path, monkeypatch, capsys):
    """`eval --store` on a copy of a checkpoint. The measurement itself is tested in
    test_metrics; here a fixed result stands in for it (a real run takes a minute)."""
    import models.document.fileio as fileio
    import models.metrics.evaluate as evaluate_module
    from models.io.checkpoint import read_info

    path = tmp_path / "c.safetensors"
    shutil.copyfile(ckpt[1], path)
    path.chmod(0o640)
    before = _tensor_bytes(path)
    monkeypatch.setattr(evaluate_module, "evaluate", lambda G, probe, **kw: {"co_move_ratio": 0.25, "samples": 2})
    assert main(["eval", str(path), "--samples", "2", "--store"]) == 0
    assert json.loads(capsys.readouterr().out) == {"co_move_ratio": 0.25, "samples": 2}
    assert read_info(path).meta["metrics"] == {"co_move_ratio": 0.25, "samples": 2}
    assert _tensor_bytes(path) == before  # the weights are bit-identical
    assert (path.stat().st_mode & 0o777) == 0o640 and sorted(os.listdir(tmp_path)) == ["c.safetensors"]
    stored = path.read_bytes()

    def full_disk(f, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio, "write_all", full_disk)
    assert main(["eval", str(path), "--samples", "2", "--store"]) == 2
    err = capsys.readouterr().err
    assert "c.safetensors: cannot be written (No space left on device)" in err and "Traceback" not in err
    assert path.read_bytes() == stored and sorted(os.listdir(tmp_path)) == ["c.safetensors"]


def test_render_kinds_makes_each_object_the_kind_named(ckpt, tmp_path, capsys):
    g = untrained_generator("tiny-rooms-kinds")
    with torch.no_grad():
        g.kind_vectors.copy_(torch.randn(g.kind_vectors.shape, generator=torch.Generator().manual_seed(1)) * 3)
    path = tmp_path / "kinds.safetensors"
    save_checkpoint(path, g, {"name": "kinds"}, dtype=torch.float32)
    out = tmp_path / "k.png"
    assert main(["render", "--checkpoint", str(path), "--seed", "3", "--kinds", "lamp, rug", "-o", str(out)]) == 0
    state = initial_state(g.config, 3).with_object(0, kind="lamp").with_object(1, kind="rug")
    assert np.array_equal(np.asarray(Image.open(out)), render(g, state).image)
    other = render(g, state.with_object(0, kind="bed")).image
    assert not np.array_equal(np.asarray(Image.open(out)), other)
    for kinds, message in (("lamp", "names 1 kinds, and the scene has 2 objects"),
                           ("lamp,sofa", "'sofa' is not one of kinds's kinds (bed, window")):
        assert main(["render", "--checkpoint", str(path), "--kinds", kinds, "-o", str(out)]) == 2
        assert message in capsys.readouterr().err
    _, untold = ckpt
    assert main(["render", "--checkpoint", str(untold), "--kinds", "lamp,rug", "-o", str(out)]) == 2
    assert "tiny is not told its objects' kinds" in capsys.readouterr().err
