"""`steergan render` and friends, end to end."""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from app.cli import main
from models import CheckpointRef, initial_state, render, save_checkpoint, save_session
from models.library import untrained_generator


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
    from app.studio import available_cpus, configure_render_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    configure_render_threads()
    assert os.environ["OMP_NUM_THREADS"] == str(max(1, available_cpus() - 1))
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    configure_render_threads()
    assert os.environ["OMP_NUM_THREADS"] == "7"  # the user's choice wins
