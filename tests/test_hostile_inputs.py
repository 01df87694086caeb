"""Hostile and unlucky inputs (issue 15): a full disk, FIFOs and devices, a small file that
asks for a huge network, deep JSON, huge numbers, wrong types, malformed training states.

Each must end in the project's own error naming the file and the problem (exit status 2
from the CLI, one line, no traceback), in bounded time and memory, with nothing lost.
"""
import errno
import json
import os
import signal
import stat
import struct
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import models.document.fileio as fileio
import models.io.checkpoint as checkpoint_module
from app.cli import main
from models.config import ARCHITECTURES, ConfigError, GeneratorConfig
from models.document.fileio import ExportError, atomic_write_bytes, clean_stale_temporaries, write_image
from models.document.scene import initial_state
from models.document.session import CheckpointRef, SessionError, load_session, parse_session, save_session
from models.io.checkpoint import CheckpointError, load_checkpoint, read_info, save_checkpoint
from models.io.library import untrained_generator
from models.io.weight_shapes import generator_shapes
from models.nets.generator import Generator
from models.training.configs import TRAINING_CONFIGS
from models.training.state import TrainStateError, load_train_state
from models.training.trainer import Trainer

ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False


@contextmanager
def must_return_within(seconds: int = 30):
    """Fail (instead of hanging the suite) if the body blocks, e.g. opening a FIFO."""
    def hang(signum, frame):
        raise AssertionError(f"blocked for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# ---- building checkpoints, good and bad -------------------------------------------------

@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A small valid checkpoint: (path, its tensor table, its JSON description, its data)."""
    g = untrained_generator("tiny-plain")
    path = tmp_path_factory.mktemp("good") / "good.safetensors"
    save_checkpoint(path, g, {"name": "good"}, dtype=torch.float32)
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    table = json.loads(raw[8:8 + n])
    meta = json.loads(table.pop("__metadata__")["steergan"])
    return path, table, meta, raw[8 + n:]


def container(table: dict, meta=None, data: bytes = b"", raw_header: bytes | None = None,
              raw_meta: str | None = None) -> bytes:
    """A safetensors file from a tensor table and our JSON (or raw replacements for either)."""
    if raw_header is None:
        header = dict(table)
        if meta is not None or raw_meta is not None:
            header["__metadata__"] = {"steergan": raw_meta if raw_meta is not None else json.dumps(meta)}
        raw_header = json.dumps(header).encode()
    return struct.pack("<Q", len(raw_header)) + raw_header + data


@pytest.fixture
def no_network_built(monkeypatch):
    """Fails the test if a bad file gets as far as building a Generator."""
    def refuse(*args, **kwargs):
        raise AssertionError("a network was built before the file was validated")

    monkeypatch.setattr(checkpoint_module, "Generator", refuse)


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def with_config(meta, **changes):
    return {**meta, "config": {**meta["config"], **changes}}


def entry(table, name, **changes):
    return {**table, name: {**table[name], **changes}}


def bad_checkpoints(table, meta, data):
    """(label, file bytes, expected message) for every kind of bad header we know of."""
    const = table["const"]
    return [
        ("deep JSON header", container({}, raw_header=b'{"a":' + deep(100_000).encode() + b"}"), "nested too deeply"),
        ("deep JSON description", container(table, raw_meta=deep(100_000), data=data), "nested too deeply"),
        ("5000-digit number in the header",
         container({}, raw_header=b'{"x": {"dtype": "F32", "shape": [1' + b"0" * 5000 + b'], "data_offsets": [0, 4]}}'),
         "not valid JSON"),
        ("5000-digit number in the config",
         container(table, raw_meta=json.dumps(meta).replace('"z_dim": 16', '"z_dim": 1' + "0" * 5000), data=data),
         "not valid JSON"),
        ("__metadata__ a list", container({"__metadata__": []}), "__metadata__ must map strings"),
        ("description not a string", container({"__metadata__": {"steergan": 5}}), "__metadata__ must map strings"),
        ("description a list", container(table, meta=[1, 2], data=data), "not a SteerGAN checkpoint description"),
        ("format_version true", container(table, meta={**meta, "format_version": True}, data=data),
         "invalid checkpoint format version"),
        ("config a string", container(table, meta={**meta, "config": "big"}, data=data), "invalid generator config"),
        ("channels of the wrong type", container(table, meta=with_config(meta, channels={"4": "many"}), data=data),
         "channels must map"),
        ("name an object", container(table, meta={**meta, "name": {"a": 1}}, data=data), "'name' must be a string"),
        ("entry a list", container({**table, "const": [1, 2]}, meta=meta, data=data), "malformed entry"),
        ("dtype a number", container(entry(table, "const", dtype=7), meta=meta, data=data), "unknown dtype"),
        ("unknown dtype", container(entry(table, "const", dtype="F8"), meta=meta, data=data), "unknown dtype"),
        ("shape a string", container(entry(table, "const", shape="abc"), meta=meta, data=data), "invalid shape"),
        ("shape of booleans", container(entry(table, "const", shape=[True, 16, 4, 4]), meta=meta, data=data),
         "invalid shape"),
        ("offsets strings", container(entry(table, "const", data_offsets=["a", "b"]), meta=meta, data=data),
         "invalid data_offsets"),
        ("offsets reversed", container(entry(table, "const", data_offsets=[8, 4]), meta=meta, data=data),
         "invalid data_offsets"),
        ("a name of 300 characters", container({**table, "w" * 300: const}, meta=meta, data=data),
         "tensor name of 300 characters"),
        ("bytes that do not match the shape",
         container(entry(table, "const", shape=[1, 16, 4, 5]), meta=meta, data=data), "but its data is"),
        ("overlapping tensors",
         container({**table, "extra": {**const}}, meta=meta, data=data), "overlapping tensors"),
        ("a tensor past the end", container(entry(table, "const", data_offsets=[0, len(data) + 4],
                                                  shape=[(len(data) + 4) // 4]), meta=meta, data=data), "truncated"),
        ("12,000 channels (the 15 KB file that took 12 GB)",
         container(table, meta=with_config(meta, channels={"4": 12000, "8": 12000, "16": 12000}), data=data),
         "channels\\[4\\] must be between 1 and 1024"),
        ("a shape the config does not have, same bytes",
         container(entry(table, "const", shape=[1, 16, 2, 8]), meta=meta, data=data), "the config needs"),
        ("integer weights", container(entry(table, "const", dtype="I32"), meta=meta, data=data), "not floating point"),
        ("a tensor the config does not have", container({**table, "x": {"dtype": "F32", "shape": [0],
                                                                       "data_offsets": [0, 0]}}, meta=meta, data=data),
         "unexpected tensors"),
    ]


def test_every_bad_header_is_a_checkpoint_error_before_any_network_is_built(good, tmp_path, no_network_built):
    _, table, meta, data = good
    cases = bad_checkpoints(table, meta, data)
    assert len(cases) >= 25
    for label, content, message in cases:
        path = tmp_path / "bad.safetensors"
        path.write_bytes(content)
        for reader in (read_info, load_checkpoint):
            with pytest.raises(CheckpointError, match=f"bad.safetensors: .*{message}") as err:
                reader(path)
            assert len(str(err.value)) < 400 and "\n" not in str(err.value), label


def test_a_small_file_cannot_ask_for_a_big_network(good, tmp_path, no_network_built):
    """The header claims a 12,000 x 12,000 tensor, consistent with a valid config's names:
    refused by size before anything is allocated, in no time."""
    _, table, meta, data = good
    path = tmp_path / "huge.safetensors"
    path.write_bytes(container(entry(table, "const", shape=[12000, 12000], data_offsets=[0, 12000 * 12000 * 4]),
                               meta=meta, data=data))
    assert path.stat().st_size < 64 << 10
    started = time.process_time()
    with pytest.raises(CheckpointError, match="huge.safetensors: is truncated"):
        load_checkpoint(path)
    assert time.process_time() - started < 5  # CPU seconds: a bound on work done, not a timing


def test_a_good_file_still_loads_after_all_that(good):
    generator, info = load_checkpoint(good[0])
    assert info.name == "good" and isinstance(generator, Generator)


def test_weight_shapes_match_the_real_network_for_every_architecture():
    for name, config in ARCHITECTURES.items():
        real = {k: tuple(v.shape) for k, v in Generator(config).state_dict().items()}
        assert generator_shapes(config) == real, name


def test_config_bounds():
    base = ARCHITECTURES["tiny-plain"].to_dict()
    for change, message in [
        ({"channels": {"4": 2000, "8": 8, "16": 8}}, "channels\\[4\\] must be between 1 and 1024"),
        ({"channels": {"4": 16, "8": 8, "16": 8, "1024": 8}}, "not synthesis resolutions"),
        ({"z_dim": 10**6}, "z_dim must be between 1 and 1024"),
        ({"mapping_layers": 1000}, "mapping_layers must be between 1 and 16"),
        ({"time": {"waves": 10**9}}, "time.waves must be an integer from 1 to 1024"),
        ({"resolution": 10**300}, "resolution must be one of"),
        ({"mtm": [8, 8]}, "twice"),
    ]:
        with pytest.raises(ConfigError, match=message):
            GeneratorConfig.from_dict({**base, **change})


def test_a_text_file_is_not_reported_as_a_huge_number(tmp_path):
    path = tmp_path / "notes.safetensors"
    path.write_text("hello, these are my notes and not a checkpoint at all\n" * 3)
    with pytest.raises(CheckpointError, match="notes.safetensors: is truncated or not a safetensors file") as err:
        read_info(path)
    assert not any(len(word) > 6 and word.isdigit() for word in str(err.value).split())


# ---- FIFOs, devices, unreadable folders ------------------------------------------------

@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe.safetensors"
    os.mkfifo(path)
    return path


def test_fifos_are_refused_without_blocking(fifo, tmp_path):
    session = tmp_path / "pipe.json"
    os.mkfifo(session)
    with must_return_within():
        for reader in (read_info, load_checkpoint):
            with pytest.raises(CheckpointError, match="pipe.safetensors: is a FIFO"):
                reader(fifo)
        with pytest.raises(SessionError, match="pipe.json: is a FIFO"):
            load_session(session)
        with pytest.raises(TrainStateError, match="pipe.safetensors: is a FIFO"):
            load_train_state(fifo)


def test_devices_and_folders_are_refused(tmp_path):
    if os.path.exists("/dev/zero"):
        with must_return_within(), pytest.raises(CheckpointError, match="/dev/zero: is a device"):
            load_checkpoint("/dev/zero")
    with pytest.raises(SessionError, match="is a folder"):
        load_session(tmp_path)


@pytest.mark.skipif(ROOT, reason="root reads every folder")
def test_a_file_in_an_unreadable_folder(good, tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    target = folder / "c.safetensors"
    target.write_bytes(good[0].read_bytes())
    folder.chmod(0)
    try:
        with pytest.raises(CheckpointError, match="c.safetensors: cannot be read: Permission denied"):
            load_checkpoint(target)
    finally:
        folder.chmod(0o700)


def one_error_line(capsys, *names):
    """The one error line of a failed command (progress lines of `train` may come before)."""
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    assert errors == lines[-1:] and lines[-1].startswith("steergan ") and ": error: " in lines[-1], err
    assert "Traceback" not in err
    for name in names:
        assert name in lines[-1], (name, err)
    return lines[-1]


def test_cli_refuses_fifos_with_exit_2(fifo, tmp_path, capsys):
    session = tmp_path / "s.json"
    save_session(session, initial_state(ARCHITECTURES["tiny-plain"], 0), CheckpointRef(str(fifo), None))
    out = str(tmp_path / "x.png")
    with must_return_within(120):
        for argv in (["info", str(fifo)], ["render", "--checkpoint", str(fifo), "-o", out],
                     ["render", "--session", str(fifo), "-o", out], ["render", "--session", str(session), "-o", out],
                     ["train", "tiny-figures", "--resume", str(fifo), "--out", str(tmp_path / "run"), "--steps", "1"]):
            assert main(argv) == 2, argv
            one_error_line(capsys, "pipe.safetensors")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # an output path that is a FIFO is left alone


def test_cli_hostile_training_configs(tmp_path, capsys):
    for name, text in [("deep.json", '{"a": ' + deep(100_000) + "}"),
                       ("types.json", '{"name": "x", "architecture": "tiny-rooms", "dataset": "rooms", "batch": "x"}'),
                       ("digits.json", '{"name": "x", "batch": 1' + "0" * 5000 + "}")]:
        (tmp_path / name).write_text(text)
        assert main(["train", str(tmp_path / name), "--steps", "1", "--out", str(tmp_path / "run")]) == 2
        one_error_line(capsys, name)
    os.mkfifo(tmp_path / "fifo.json")  # refused by the config reader itself, without blocking
    assert main(["train", str(tmp_path / "fifo.json"), "--steps", "1", "--out", str(tmp_path / "run")]) == 2
    assert "FIFO" in one_error_line(capsys, "fifo.json")


def test_cli_device_errors(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["render", "--arch", "tiny-plain", "--device", "cuda", "-o", "x.png"]) == 2
    assert "no CUDA device is available" in one_error_line(capsys, "--device cuda")
    assert main(["render", "--arch", "tiny-plain", "--device", "banana", "-o", "x.png"]) == 2
    assert "is not a device" in one_error_line(capsys, "banana")
    assert main(["video", "--arch", "tiny-plain", "--device", "mps", "--seconds", "1", "--fps", "1",
                 "-o", "x.gif"]) == 2
    assert "cpu or cuda" in one_error_line(capsys, "mps")
    assert main(["train", "tiny-rooms", "--device", "cuda:0", "--steps", "1"]) == 2
    one_error_line(capsys, "cuda:0")


def test_cli_bad_checkpoints_are_one_line_and_exit_2(good, tmp_path, capsys):
    _, table, meta, data = good
    for label, content, _ in bad_checkpoints(table, meta, data)[:8]:
        path = tmp_path / "hostile.safetensors"
        path.write_bytes(content)
        for argv in (["info", str(path)], ["render", "--checkpoint", str(path), "-o", str(tmp_path / "x.png")]):
            assert main(argv) == 2, label
            one_error_line(capsys, "hostile.safetensors")


# ---- sessions ---------------------------------------------------------------------------

def session_text(**changes):
    doc = {"format": "steergan-session", "version": 1, "checkpoint": {"path": None, "sha256": None,
                                                                          "architecture": "tiny-plain"},
           "state": initial_state(ARCHITECTURES["tiny-plain"], 0).to_dict()}
    doc.update(changes)
    return json.dumps(doc)


@pytest.mark.parametrize("text, message", [
    ('{"a": ' + deep(100_000) + "}", "nested too deeply"),
    ('{"format": "steergan-session", "version": 1' + "0" * 5000 + "}", "not a session"),
    (session_text(version=True), "invalid session version True"),
    (session_text(checkpoint={"path": "x", "sha256": "not hex"}), "sha256 must be 64 hex digits"),
    (session_text(state={"seed": [[[[1]]]]}), "invalid scene"),
])
def test_hostile_sessions(tmp_path, text, message):
    path = tmp_path / "hostile.json"
    path.write_text(text)
    with pytest.raises(SessionError, match=f"hostile.json: .*{message}"):
        load_session(path)


def test_render_session_checks_the_checkpoint_hash(good, tmp_path, capsys):
    session = tmp_path / "s.json"
    save_session(session, initial_state(ARCHITECTURES["tiny-plain"], 0), CheckpointRef(str(good[0]), "0" * 64))
    out = tmp_path / "x.png"
    assert main(["render", "--session", str(session), "-o", str(out)]) == 2
    assert "has changed since the session was saved" in one_error_line(capsys, "s.json", "good.safetensors")
    assert not out.exists()
    assert main(["render", "--session", str(session), "--checkpoint", str(good[0]), "-o", str(out)]) == 0
    info = read_info(good[0])
    save_session(session, initial_state(ARCHITECTURES["tiny-plain"], 0), CheckpointRef(str(good[0]), info.sha256))
    assert main(["render", "--session", str(session), "-o", str(out)]) == 0


# ---- writing: a full disk, permissions, leftovers -------------------------------------------

def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def only_target(folder, name):
    return sorted(os.listdir(folder)) == [name]


def test_full_disk_keeps_the_old_image_session_and_checkpoint(good, tmp_path, monkeypatch):
    image = tmp_path / "a.png"
    write_image(image, np.zeros((8, 8, 3), np.uint8))
    session = tmp_path / "s.json"
    save_session(session, initial_state(ARCHITECTURES["tiny-plain"], 0), CheckpointRef(None, None, "tiny-plain"))
    ckpt = tmp_path / "c.safetensors"
    ckpt.write_bytes(good[0].read_bytes())
    before = {p: p.read_bytes() for p in (image, session, ckpt)}
    monkeypatch.setattr(fileio, "write_all", enospc)
    with pytest.raises(ExportError, match="a.png: cannot write here \\(No space left on device\\)"):
        write_image(image, np.full((8, 8, 3), 255, np.uint8))
    with pytest.raises(OSError, match="No space left"):
        save_session(session, initial_state(ARCHITECTURES["tiny-plain"], 5), CheckpointRef(None, None, "tiny-plain"))
    with pytest.raises(CheckpointError, match="c.safetensors: cannot be written \\(No space left on device\\)"):
        save_checkpoint(ckpt, untrained_generator("tiny-plain", seed=3))
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(os.listdir(tmp_path)) == ["a.png", "c.safetensors", "s.json"]  # no temporaries left


def test_a_failing_fsync_or_short_write_is_a_failure_too(tmp_path, monkeypatch):
    target = tmp_path / "t.bin"
    target.write_bytes(b"old")
    monkeypatch.setattr(fileio.os, "fsync", enospc)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_bytes(target, b"new data")
    monkeypatch.undo()
    monkeypatch.setattr(fileio, "write_all", lambda f, data: f.write(data[:3]))  # a short write
    with pytest.raises(OSError, match="wrote 3 of 8 bytes"):
        atomic_write_bytes(target, b"new data")
    assert target.read_bytes() == b"old" and only_target(tmp_path, "t.bin")


def test_training_on_a_full_disk_is_an_error_not_a_traceback(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    monkeypatch.setattr(fileio, "write_all", enospc)
    assert main(["train", "tiny-figures", "--steps", "1", "--out", str(run), "--device", "cpu"]) == 2
    line = one_error_line(capsys, "train_state.safetensors", "No space left on device")
    assert "training stopped at step 1" in line
    assert not list(run.glob("*.safetensors")) and not list(run.glob(".*.part"))


def fake_ffmpeg(tmp_path, status: int) -> str:
    """An encoder that eats the frames, leaves 8 KB of junk and exits with `status`, as
    ffmpeg did on the full disk; anything else goes to the real ffmpeg."""
    from models.io.video import ffmpeg_exe

    script = tmp_path / f"ffmpeg-{status}.sh"
    script.write_text(f"""#!/bin/sh
case " $* " in
  *" -i - "*) for last; do :; done
             cat > /dev/null
             head -c 8192 /dev/urandom > "$last"
             echo "[out#0/mp4] Error writing trailer: No space left on device" >&2
             exit {status} ;;
  *) exec "{ffmpeg_exe()}" "$@" ;;
esac
""")
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize("status, message", [
    (1, r"the encoder \(ffmpeg\) failed with exit status 1: .*No space left on device"),
    (0, "the written video cannot be read back"),
])
def test_a_failing_encoder_leaves_the_old_video_untouched(tiny_generators, tmp_path, tmp_path_factory, monkeypatch,
                                                         status, message):
    import models.io.video as video

    g = tiny_generators["tiny-plain"]
    target = tmp_path / "v.mp4"
    video.write_video(target, video.frames(g, initial_state(g.config, 0), 4 / 25, 25), 25, 4)
    good_bytes = target.read_bytes()
    assert video.count_mp4_frames(target) == 4
    fake = fake_ffmpeg(tmp_path_factory.mktemp("ffmpeg"), status)
    monkeypatch.setattr(video, "ffmpeg_exe", lambda: fake)
    with pytest.raises(ExportError, match=f"v.mp4: cannot write the video \\({message}"):
        video.write_video(target, video.frames(g, initial_state(g.config, 1), 4 / 25, 25), 25, 4)
    assert target.read_bytes() == good_bytes and only_target(tmp_path, "v.mp4")


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE and SIGXFSZ as on Linux")
def test_a_real_full_disk_under_the_cli(tmp_path):
    """The real stack (steergan video, the real ffmpeg) with the file size limited, as on an
    almost full disk: exit 2, one line, the old video untouched, no temporary left."""
    target = tmp_path / "v.mp4"
    target.write_bytes(b"the good video that was here" * 100)
    before = target.read_bytes()
    code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN);"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000));"
            "from app.cli import main; sys.exit(main(sys.argv[1:]))")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", code, "video", "--arch", "tiny-clips", "--seconds", "2", "--fps", "25",
                          "--size", "256", "--seed", "3", "-o", str(target)],
                         capture_output=True, text=True, timeout=300, env=env, cwd=Path(__file__).parent.parent)
    assert res.returncode == 2, res.stderr
    errors = [ln for ln in res.stderr.splitlines() if "error" in ln]
    assert len(errors) == 1 and "v.mp4: cannot write the video" in errors[0] and "Traceback" not in res.stderr
    assert target.read_bytes() == before and only_target(tmp_path, "v.mp4")


def test_replacing_a_file_keeps_its_mode_and_never_touches_the_umask(tmp_path, monkeypatch):
    def no_umask(*args):
        raise AssertionError("the process umask was changed")

    monkeypatch.setattr(os, "umask", no_umask)
    image = np.zeros((8, 8, 3), np.uint8)
    for mode in (0o640, 0o444, 0o600):
        path = tmp_path / f"m{mode:o}.png"
        path.write_bytes(b"x")
        path.chmod(mode)
        write_image(path, image)
        assert stat.S_IMODE(path.stat().st_mode) == mode and Image.open(path).size == (8, 8)
    monkeypatch.undo()
    umask = os.umask(0o022)
    os.umask(umask)
    fresh = tmp_path / "fresh.png"
    write_image(fresh, image)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask  # what a plain open() gives


def test_a_symlink_target_replaces_the_file_it_points_to(tmp_path):
    real = tmp_path / "real.png"
    real.write_bytes(b"x")
    link = tmp_path / "link.png"
    link.symlink_to(real)
    write_image(link, np.zeros((4, 4, 3), np.uint8))
    assert link.is_symlink() and Image.open(real).size == (4, 4)


def test_stale_temporaries_of_ours_are_cleaned_on_the_next_write(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = fileio._HOST
    names = {
        f".a.png.sg{host}-{dead.pid}.0123abcd.part": False,  # its writer is dead: removed
        f".a.png.sg{host}-{os.getppid()}.0123abcd.part": True,  # its writer is alive: kept
        f".a.png.sg{host}-{os.getpid()}.0123abcd.part": True,  # ours (another thread): kept
        ".v.mp4.k2j4_9ab.part.mp4": True,  # the old naming, fresh: kept
        ".v.gif.q1w2e3r4.part.gif": False,  # the old naming, two hours old: removed
        ".notes.part": True,  # not ours
        "keep.png": True,
    }
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    old = time.time() - 2 * 3600
    os.utime(tmp_path / ".v.gif.q1w2e3r4.part.gif", (old, old))
    write_image(tmp_path / "new.png", np.zeros((4, 4, 3), np.uint8))
    left = set(os.listdir(tmp_path))
    assert left == {name for name, kept in names.items() if kept} | {"new.png"}
    assert clean_stale_temporaries(tmp_path / "missing") == []


def test_a_special_file_at_the_output_path_is_left_alone(tmp_path):
    pipe = tmp_path / "out.png"
    os.mkfifo(pipe)
    with must_return_within(), pytest.raises(ExportError, match="out.png: .*is a FIFO"):
        write_image(pipe, np.zeros((4, 4, 3), np.uint8))
    assert stat.S_ISFIFO(os.stat(pipe).st_mode) and only_target(tmp_path, "out.png")


# ---- training states ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny trainer one step in, and the state file it saved."""
    out = tmp_path_factory.mktemp("state")
    trainer = Trainer(TRAINING_CONFIGS["tiny-figures"], out, device="cpu")
    trainer.train_step()
    trainer.save()
    return trainer, out / "train_state.safetensors"


def state_parts(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, json.loads(f.metadata()["steergan_train"])


def write_state(path, tensors, meta=None, raw_meta=None):
    from safetensors.torch import save

    path.write_bytes(save(tensors, metadata={"steergan_train": raw_meta if raw_meta is not None else json.dumps(meta)}))


def malformed_states(tensors, meta):
    """(label, tensors, meta or raw JSON text, expected message): 20 kinds."""
    g_name = next(k for k in tensors if k.startswith("G/"))
    opt_name = next(k for k in tensors if k.startswith("opt_G/state/"))
    without = lambda name: {k: v for k, v in tensors.items() if k != name}
    info = meta["info"]
    groups = meta["opt_G/param_groups"]
    return [
        ("metadata not JSON", tensors, "{not json", "not valid JSON"),
        ("metadata nested 100,000 deep", tensors, deep(100_000), "nested too deeply"),
        ("metadata a list", tensors, "[1, 2]", "not a SteerGAN training state description"),
        ("another format", tensors, json.dumps({**meta, "format": "other"}), "not a SteerGAN training state"),
        ("version true", tensors, json.dumps({**meta, "version": True}), "unsupported training state format"),
        ("version from the future", tensors, json.dumps({**meta, "version": 99}), "unsupported training state"),
        ("no info", tensors, json.dumps({k: v for k, v in meta.items() if k != "info"}), "'info' must be an object"),
        ("step a string", tensors, json.dumps({**meta, "info": {**info, "step": "x"}}), "info.step"),
        ("negative images", tensors, json.dumps({**meta, "info": {**info, "images_seen": -1}}), "info.images_seen"),
        ("train_seconds NaN", tensors, json.dumps({**meta, "info": {**info, "train_seconds": float("nan")}}),
         "info.train_seconds"),
        ("a tensor name without a part", {**tensors, "loose": torch.zeros(1)}, json.dumps(meta), "is not 'part/name'"),
        ("a weight missing", without(g_name), json.dumps(meta), "G does not match"),
        ("a weight of another shape", {**tensors, g_name: torch.zeros(3, 3, 3)}, json.dumps(meta), "this training"),
        ("a part the trainer does not have", {**tensors, "H/x": torch.zeros(1)}, json.dumps(meta), "parts this"),
        ("no data rng", without("rng/data"), json.dumps(meta), "'rng/data' is missing"),
        ("an rng of the wrong size", {**tensors, "rng/torch": torch.zeros(7, dtype=torch.uint8)}, json.dumps(meta),
         "not uint8"),
        ("no param_groups", tensors, json.dumps({k: v for k, v in meta.items() if k != "opt_G/param_groups"}),
         "has state but no param_groups"),
        ("lr a string", tensors, json.dumps({**meta, "opt_G/param_groups": [{**groups[0], "lr": "fast"}]}),
         "setting 'lr'"),
        ("state for a parameter that is not there", {**tensors, "opt_G/state/9999/exp_avg": torch.zeros(1)},
         json.dumps(meta), "state for parameter 9999"),
        ("optimizer state of the wrong shape", {**tensors, opt_name: torch.zeros(2, 2, 2)}, json.dumps(meta),
         "expected float"),
        ("scalars not numbers", tensors, json.dumps({**meta, "opt_G/scalars": {"0/step": "x"}}), "must map"),
    ]


def test_malformed_training_states_are_train_state_errors(trained, tmp_path):
    trainer, good_state = trained
    tensors, meta = state_parts(good_state)
    cases = malformed_states(tensors, meta)
    assert len(cases) >= 14
    bad = tmp_path / "bad_state.safetensors"
    for _label, case_tensors, raw_meta, message in cases:
        write_state(bad, case_tensors, raw_meta=raw_meta)
        with pytest.raises(TrainStateError, match=f"bad_state.safetensors: .*{message}"):
            trainer.load(bad)
    for content, message in [(b"text, not a state", "not a safetensors file"), (b"", "truncated")]:
        bad.write_bytes(content)
        with pytest.raises(TrainStateError, match=message):
            trainer.load(bad)
    ckpt = good_state.parent / "tiny-figures.safetensors"
    with pytest.raises(TrainStateError, match="a shipped checkpoint cannot be resumed"):
        trainer.load(ckpt)
    trainer.load(good_state)  # and the good one still loads
    assert trainer.step == 1


def test_cli_resume_from_a_malformed_state_exits_2(trained, tmp_path, capsys):
    _, good_state = trained
    tensors, meta = state_parts(good_state)
    bad = tmp_path / "bad_state.safetensors"
    write_state(bad, {**tensors, "rng/torch": torch.zeros(7, dtype=torch.uint8)}, meta)
    assert main(["train", "tiny-figures", "--resume", str(bad), "--out", str(tmp_path / "r"), "--steps", "2"]) == 2
    one_error_line(capsys, "bad_state.safetensors")


# ---- fuzzing: only our own errors come out ---------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(field=st.sampled_from(["dtype", "shape", "data_offsets", None]), value=json_values,
       meta_key=st.sampled_from(["config", "format_version", "name", "metrics", "format", None]),
       meta_value=json_values, config_key=st.sampled_from(["channels", "z_dim", "mtm", "time", "resolution", None]))
def test_fuzz_checkpoint_header(good, fuzz_dir, field, value, meta_key, meta_value, config_key):
    _, table, meta, data = good
    table = entry(table, "const", **{field: value}) if field else table
    meta = {**meta, meta_key: meta_value} if meta_key else meta
    if config_key and isinstance(meta.get("config"), dict):
        meta = with_config(meta, **{config_key: value})
    path = fuzz_dir / "fuzz.safetensors"
    path.write_bytes(container(table, meta=meta, data=data))
    try:
        load_checkpoint(path)
    except CheckpointError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)


@FUZZ
@given(data=st.data())
def test_fuzz_checkpoint_bytes(good, fuzz_dir, data):
    """Bytes of a good file changed at random places, or cut, or random bytes."""
    raw = bytearray(good[0].read_bytes())
    kind = data.draw(st.sampled_from(["flip", "cut", "random"]))
    if kind == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, min(len(raw), 4000) - 1))
            raw[i] = data.draw(st.integers(0, 255))
    elif kind == "cut":
        raw = raw[:data.draw(st.integers(0, len(raw)))]
    else:
        raw = bytearray(data.draw(st.binary(max_size=200)))
    path = fuzz_dir / "bytes.safetensors"
    path.write_bytes(bytes(raw))
    try:
        load_checkpoint(path)
    except CheckpointError:
        pass


@FUZZ
@given(version=json_values, checkpoint=json_values, state=json_values,
       state_key=st.sampled_from(["seed", "objects", "truncation", "time", "blocks", "offsets_on", None]),
       state_value=json_values)
def test_fuzz_session_parser(version, checkpoint, state, state_key, state_value):
    good_state = initial_state(ARCHITECTURES["tiny-rooms"], 0).to_dict()
    for doc in ({"format": "steergan-session", "version": version, "checkpoint": {}, "state": good_state},
                {"format": "steergan-session", "version": 1, "checkpoint": checkpoint, "state": good_state},
                {"format": "steergan-session", "version": 1, "checkpoint": {}, "state": state},
                {"format": "steergan-session", "version": 1, "checkpoint": {},
                 "state": {**good_state, state_key: state_value} if state_key else good_state}):
        try:
            parse_session(json.dumps(doc), "fuzz.json")
        except SessionError as exc:
            assert str(exc).startswith("fuzz.json: ") and len(str(exc)) < 600
