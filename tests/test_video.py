"""The time capability (StyleGAN-V): deterministic, frame-rate independent, unbounded video;
edits on every frame; streamed, atomic MP4/GIF export; sparse clip training; the CLI."""
import dataclasses
import os
from dataclasses import replace

import imageio.v2 as iio
import imageio.v3 as iio3
import numpy as np
import pytest
import torch

from app.cli import main
from models.config import ARCHITECTURES, TIME_DEFAULTS, ConfigError, GeneratorConfig
from models.document.fileio import ExportError
from models.document.scene import initial_state
from models.io.checkpoint import load_checkpoint
from models.io.library import untrained_generator
from models.io.video import Cancelled, frames, write_video
from models.nets.motion import _code, grid_step, motion_code_seed, seeded_motion
from models.nets.video_discriminator import VideoDiscriminator
from models.render import latents_for, render
from models.training.configs import TRAINING_CONFIGS
from models.training.trainer import Trainer
from tests.conftest import with_live_offsets


@pytest.fixture(scope="module")
def clips_g():
    return untrained_generator("tiny-clips")


def test_time_config_is_filled_in_and_checked():
    cfg = ARCHITECTURES["clips"]
    assert cfg.time == TIME_DEFAULTS and cfg.capabilities()["time"] is True
    assert GeneratorConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown time keys"):
        replace(cfg, time={"wings": 2})
    with pytest.raises(ConfigError, match="kernel must be odd"):
        replace(cfg, time={"kernel": 4})


def test_generator_without_time_ignores_time(tiny_generators):
    g = tiny_generators["tiny-rooms"]
    assert not hasattr(g, "motion") and g.convs["4"][0].weight.shape[1] == g.config.channels[4]
    s = initial_state(g.config, 2)
    assert np.array_equal(render(g, s).image, render(g, replace(s, time=7.3, motion_seed=9)).image)


def test_time_renders_deterministically_and_moves(clips_g):
    s = initial_state(clips_g.config, 4)
    times = [0.0, 0.3, 0.64, 1.7, 4.0]
    first = [render(clips_g, replace(s, time=t)).image for t in times]
    clone = untrained_generator("tiny-clips")
    assert all(np.array_equal(a, render(clone, replace(s, time=t)).image) for a, t in zip(first, times))
    assert all(not np.array_equal(first[0], im) for im in first[1:])  # it moves
    other = render(clips_g, replace(s, time=1.7, motion_seed=s.motion_seed + 1)).image
    assert not np.array_equal(other, first[3])  # motion is the scene's, by seed
    half = render(clips_g, replace(s, time=1.7), precision="bfloat16").image  # the time path under autocast
    assert np.abs(half.astype(int) - first[3]).mean() < 4


def test_frame_at_t_is_identical_across_frame_rates(clips_g):
    s = initial_state(clips_g.config, 1)
    at25, at60 = list(frames(clips_g, s, 0.4, 25)), list(frames(clips_g, s, 0.4, 60))
    assert len(at25) == 10 and len(at60) == 24
    for k in range(2):  # t = 0 and 0.2 s
        assert np.array_equal(at25[5 * k], at60[12 * k])


def test_unbounded_time_needs_only_the_codes_around_t(clips_g):
    cfg = clips_g.config
    t = 123456.789
    codes, alpha = seeded_motion(cfg, 5, t)
    k = int(t // grid_step(cfg))
    expect = torch.stack([_code(5, j, cfg.time["motion_dim"]) for j in range(k - 1, k + 3)])
    assert torch.equal(codes, expect) and 0 <= alpha < 1
    seed = motion_code_seed(5, k)
    assert torch.equal(codes[1], torch.randn(cfg.time["motion_dim"], generator=torch.Generator().manual_seed(seed)))
    img = render(clips_g, replace(initial_state(cfg, 0), time=t)).image
    assert img.shape == (32, 32, 3)


def test_time_features_are_continuous_across_grid_points(clips_g):
    s = initial_state(clips_g.config, 3)
    step = grid_step(clips_g.config)
    for t in (step, 5 * step, 0.3):
        a, b = (clips_g.time_features(latents_for(clips_g, replace(s, time=t + d))) for d in (-1e-6, 1e-6))
        assert (a - b).abs().max() < 1e-3


def test_an_edit_applies_to_every_frame(clips_g):
    g = with_live_offsets(untrained_generator("tiny-clips"))
    s = initial_state(g.config, 0).with_object(0, center=(0.3, 0.3))
    moved = s.move_center(0, 0, (0.7, 0.6))
    off = replace(moved, offsets_on=False)
    base, edited, no_off = (list(frames(g, st, 0.2, 25)) for st in (s, moved, off))
    want = render(g, moved, extras=True).heatmaps["heatmaps_objects"]
    for i, t in enumerate(i / 25 for i in range(len(base))):
        assert not np.array_equal(base[i], edited[i]) and not np.array_equal(edited[i], no_off[i])
        frame = render(g, replace(moved, time=t), extras=True)
        assert np.array_equal(frame.image, edited[i])
        assert np.array_equal(frame.heatmaps["heatmaps_objects"], want)  # content fixed over time


@pytest.mark.parametrize("ext, fps, size", [("mp4", 25, 48), ("gif", 20, 32), ("gif", 30, 32)])
def test_export_reads_back_with_requested_frames_size_fps(clips_g, tmp_path, ext, fps, size):
    s = initial_state(clips_g.config, 2)
    path = tmp_path / f"v.{ext}"
    seen = []
    n = round(0.4 * fps)
    write_video(path, frames(clips_g, s, 0.4, fps, size=size), fps, n,
                progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (n, n) and os.listdir(tmp_path) == [path.name]
    if ext == "mp4":
        reader = iio.get_reader(path, format="FFMPEG")
        got = np.stack([f for f in reader])  # list() would ask len(): unknown (huge) for ffmpeg
        assert reader.get_meta_data()["fps"] == fps
    else:
        got = iio3.imread(path, index=None)
        durations = [iio3.immeta(path, index=i)["duration"] for i in range(len(got))]
        assert abs(sum(durations) / len(durations) - 1000 / fps) < 1
    assert got.shape[:3] == (n, size, size)


def test_frames_are_streamed_to_the_encoder(tmp_path):
    pulled, sizes = [], []

    def source():
        rng = np.random.default_rng(0)
        for i in range(30):
            pulled.append(i)
            yield rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)

    def progress(done, total):
        assert len(pulled) == done  # one frame asked for at a time: nothing is buffered up front
        sizes.append(sum(f.stat().st_size for f in tmp_path.iterdir()))
    write_video(tmp_path / "s.gif", source(), 10, 30, progress=progress)
    # Encoded frames reach the file as they come (past an 8 KiB write buffer), not at the end.
    assert sizes[10] > 0 and all(b >= a for a, b in zip(sizes, sizes[1:])) and sizes[-1] > sizes[10]
    assert len(iio3.imread(tmp_path / "s.gif", index=None)) == 30


def test_cancel_and_errors_leave_no_partial_file(clips_g, tmp_path):
    s = initial_state(clips_g.config, 2)
    path = tmp_path / "c.mp4"
    calls, rendered = [], []

    def cancel():
        calls.append(1)
        return len(calls) > 3

    def counted(source):
        for frame in source:
            rendered.append(1)
            yield frame
    with pytest.raises(Cancelled):
        write_video(path, counted(frames(clips_g, s, 1.0, 25)), 25, 25, cancel=cancel)
    assert os.listdir(tmp_path) == [] and len(rendered) == 3  # checked before rendering the next frame
    path.write_bytes(b"old")  # an existing file survives a failed export untouched
    with pytest.raises(Cancelled):
        write_video(path, frames(clips_g, s, 1.0, 25), 25, 25, cancel=lambda: True)
    with pytest.raises(ExportError, match="even"):
        write_video(path, frames(clips_g, s, 0.2, 25, size=33), 25, 5)
    assert os.listdir(tmp_path) == ["c.mp4"] and path.read_bytes() == b"old"
    for bad, message in (("v.avi", "unknown video type"), ("no/such/v.gif", "does not exist")):
        with pytest.raises(ExportError, match=message) as info:
            write_video(tmp_path / bad, frames(clips_g, s, 0.2, 25), 25, 5)
        assert bad in str(info.value)
    with pytest.raises(ExportError, match="at most 50 fps"):
        write_video(tmp_path / "v.gif", frames(clips_g, s, 0.2, 60), 60, 12)


def test_video_discriminator_sees_the_time_gaps():
    D = VideoDiscriminator(32, {4: 16, 8: 16, 16: 8, 32: 8}, frames=3)
    clips = torch.randn(2, 3, 3, 32, 32, requires_grad=True)
    times = torch.tensor([[0.0, 0.5, 1.0], [0.1, 2.0, 3.5]])
    logits, feats = D(clips, times, return_features=True)
    assert logits.shape == (2, 1) and {k: v.shape[0] for k, v in feats.items()} == {16: 6, 8: 6, 4: 6}
    assert not torch.allclose(logits, D(clips, times * 2))
    logits.sum().backward()
    assert clips.grad.abs().sum() > 0


def test_time_metrics_in_eval(clips_g, tiny_generators):
    from models.metrics.evaluate import evaluate
    from models.metrics.probe import DEFAULT_PROBE, load_probe
    from models.metrics.temporal import TIME_KEYS

    probe, _ = load_probe(DEFAULT_PROBE)
    metrics = evaluate(clips_g, probe, samples=4, fd_samples=8)
    assert metrics["fps_consistency_max_abs"] == 0
    assert metrics["frame_change_25fps"] > 0 and 0 < metrics["frame_change_25fps_real"] < 0.05
    plain = evaluate(tiny_generators["tiny-plain"], probe, samples=2, fd_samples=8)
    assert not set(TIME_KEYS) & set(plain)


@pytest.mark.parametrize("layout", [False, True])
def test_tiny_clips_config_trains_on_cpu(tmp_path, layout):
    cfg = TRAINING_CONFIGS["tiny-clips"]
    if layout:
        cfg = dataclasses.replace(cfg, condition_d_on_layout=True, align_weight=0.0)
    trainer = Trainer(cfg, tmp_path)
    seen = {}
    for _ in range(3):
        stats = trainer.train_step()
        assert all(torch.isfinite(v) for v in stats.values()), stats
        seen.update(stats)
    assert isinstance(trainer.D, VideoDiscriminator) and {"r1", "distortion"} <= set(seen)
    assert ("align" in seen) != layout and trainer.images_seen == 3 * cfg.batch


def test_cli_video_from_a_trained_clips_checkpoint(tmp_path, capsys):
    ckpt = Trainer(TRAINING_CONFIGS["tiny-clips"], tmp_path / "run").run(max_steps=1)
    G, info = load_checkpoint(ckpt)
    assert info.meta["capabilities"]["time"] and G.config.time is not None
    out = tmp_path / "v.mp4"
    args = ["video", "--checkpoint", str(ckpt), "--seconds", "0.4", "--fps", "10", "--size", "64", "-o", str(out)]
    assert main(args) == 0
    assert "wrote" in capsys.readouterr().out
    got = np.stack([f for f in iio.get_reader(out, format="FFMPEG")])
    assert got.shape == (4, 64, 64, 3)
    assert main(["video", "--arch", "tiny-clips", "--seconds", "1", "--fps", "5", "-o", str(tmp_path / "v.avi")]) == 2
    assert "unknown video type" in capsys.readouterr().err
    still = ["video", "--arch", "tiny-rooms", "--seconds", "0.2", "--fps", "10", "-o", str(tmp_path / "s.gif")]
    assert main(still) == 0 and "no time capability" in capsys.readouterr().err
    assert len(iio3.imread(tmp_path / "s.gif", index=None)) == 2
