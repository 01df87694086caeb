"""Fitting a picture (issue 26): the layout from the segmenter, the latents, pivotal tuning,
fit files by hash, fitted styles in rendering, and `steergan fit`."""
import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from models.document.fileio import file_sha256
from models.document.scene import SceneState, initial_state
from models.fit.layout import blobs, initial_scene
from models.fit.optimize import FitCancelled, FitSettings, fit_picture, psnr
from models.io.backbone_file import backbone_path, load_backbone
from models.io.checkpoint import load_checkpoint
from models.io.fit_file import (
    FitFileError,
    check_fits_generator,
    find_fit,
    fit_name,
    load_fit,
    open_fit_for,
    save_fit,
)
from models.io.picture import picture_tensor
from models.render import render

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ROOT / "checkpoints" / "rooms-cpu.safetensors"
# Ended by their step counts, never by the time caps (a loaded machine must not change a result).
QUICK = FitSettings(steps=30, seconds=600.0, tune_seconds=600.0)


@pytest.fixture(scope="module")
def rooms():
    generator, _ = load_checkpoint(ROOMS)
    return generator, file_sha256(ROOMS)


@pytest.fixture(scope="module")
def backbone():
    return load_backbone(backbone_path())[0]


@pytest.fixture(scope="module")
def own_fit(rooms, backbone):
    """A sample of rooms-cpu, and a quick fit of it with pivotal tuning."""
    generator, sha = rooms
    picture = render(generator, initial_state(generator.config, 3)).image
    outcome = fit_picture(generator, picture_tensor(picture), sha, backbone,
                          dataclasses.replace(QUICK, tune_steps=40))
    return picture, outcome


def test_blobs_are_connected_regions_largest_first_noise_dropped():
    labels = np.zeros((32, 32), np.int64)
    labels[2:6, 2:6] = 1  # 16 px
    labels[10:20, 20:30] = 2  # 100 px
    labels[30, 30] = 3  # 1 px: noise
    found = blobs(labels)
    assert [b.label for b in found] == [2, 1]
    assert found[0].area == 100 and found[0].center == pytest.approx((25 / 32, 15 / 32))


def test_the_layout_puts_handles_on_blobs_and_hides_the_rest(rooms):
    config = rooms[0].config
    labels = np.zeros((64, 64), np.int64)
    labels[40:56, 8:24] = 1
    scene, used = initial_scene(config, labels, seed=4)
    assert len(used) == 1 and scene.objects[0].center == pytest.approx((0.25, 0.75))
    assert scene.objects[0].visible and not any(o.visible for o in scene.objects[1:])
    assert initial_scene(config, labels, seed=4)[0] == scene  # the seed decides the rest


def test_a_generator_told_kinds_gets_each_blob_as_the_kind_it_was_segmented_as():
    from models.config import ARCHITECTURES, ROOM_KINDS

    config = ARCHITECTURES["rooms-cpu-kinds"]
    classes = ["background", *ROOM_KINDS, "figure"]
    labels = np.zeros((64, 64), np.int64)
    labels[40:56, 8:30] = classes.index("rug")
    labels[8:20, 40:52] = classes.index("window")
    scene, used = initial_scene(config, labels, seed=4, classes=classes)
    assert [o.kind for o in scene.objects[:2]] == ["rug", "window"]
    assert scene.objects[2].kind in ROOM_KINDS and not scene.objects[2].visible  # drawn, hidden
    untold, _ = initial_scene(ARCHITECTURES["rooms-cpu-own"], labels, seed=4, classes=classes)
    assert all(o.kind is None for o in untold.objects)


def test_fitting_recovers_an_own_sample_and_tuning_gets_closer(own_fit, rooms):
    picture, outcome = own_fit
    generator, _ = rooms
    start = render(generator, initial_state(generator.config, 99)).image  # another sample: the unfitted distance
    # The default shipped in session 11 measured: another sample 13.2 dB, latents 18.8 (30
    # steps), tuned 23.3. The one shipped in session 16 (blocks and objects from 16 px: the
    # coarse layout answers to the global style alone) is harder to match: 13.9, 16.9, 20.1.
    assert outcome.psnr_latents > psnr(start, picture) + 2.5
    assert outcome.psnr > outcome.psnr_latents + 1
    assert outcome.psnr > psnr(start, picture) + 5.5
    assert outcome.steps == 30 and outcome.tune_steps == 40
    assert outcome.state.fit == outcome.fit.sha256 and outcome.fit.tuned


def test_the_fit_file_reproduces_the_picture_exactly(own_fit, rooms, tmp_path):
    _, outcome = own_fit
    generator, sha = rooms
    path = save_fit(outcome.fit, tmp_path)
    assert path.name == fit_name(outcome.state.fit) and file_sha256(path) == outcome.state.fit
    reopened_state = SceneState.from_dict(outcome.state.to_dict())
    g, fit = open_fit_for(reopened_state, tmp_path / "scene.json", generator, sha)
    assert g is not generator  # the tuned copy; the shared generator is untouched
    assert np.array_equal(render(g, reopened_state, fit=fit).image, outcome.image)


def test_restyling_one_object_replaces_only_its_fitted_style(own_fit, rooms, tmp_path):
    _, outcome = own_fit
    generator, sha = rooms
    save_fit(outcome.fit, tmp_path)
    g, fit = open_fit_for(outcome.state, tmp_path / "s.json", generator, sha)
    from models.render import latents_for

    lat = latents_for(g, outcome.state.with_object(1, style_seed=12345), fit=fit)
    assert lat.w_objects_on.tolist() == [[True, False, True]] and lat.w_blocks_on.all()
    back = latents_for(g, outcome.state, fit=fit)  # undo: the seed is back, so is the fitted style
    assert back.w_objects_on.all()
    unfitted = render(generator, dataclasses.replace(outcome.state, fit=None)).image
    assert not np.array_equal(unfitted, outcome.image)


def test_the_same_seed_gives_the_same_fit_file(rooms, backbone):
    generator, sha = rooms
    picture = picture_tensor(render(generator, initial_state(generator.config, 8)).image)
    settings = FitSettings(steps=6, seconds=600.0, seed=5)
    a = fit_picture(generator, picture, sha, backbone, settings)
    b = fit_picture(generator, picture, sha, backbone, settings)
    assert a.fit.sha256 == b.fit.sha256 and a.state == b.state


def test_cancel_stops_the_fit_and_leaves_the_generator_as_it_was(rooms, backbone):
    generator, sha = rooms
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    calls = []
    picture = picture_tensor(render(generator, initial_state(generator.config, 2)).image)
    with pytest.raises(FitCancelled):
        fit_picture(generator, picture, sha, backbone, dataclasses.replace(QUICK, tune_steps=10),
                    progress=lambda *a: calls.append(a), cancelled=lambda: len(calls) >= 35)
    assert len(calls) == 35 and calls[-1][0] == "tuning"  # it got into tuning, then stopped at once
    assert all(torch.equal(v, generator.state_dict()[k]) for k, v in before.items())


def test_progress_reports_live_images(rooms, backbone):
    generator, sha = rooms
    seen = []
    picture = picture_tensor(render(generator, initial_state(generator.config, 2)).image)
    fit_picture(generator, picture, sha, backbone, FitSettings(steps=12, seconds=600.0, preview_every=5),
                progress=lambda stage, step, total, db, image: seen.append((step, image is not None)))
    assert [s for s, shown in seen if shown] == [1, 5, 10, 12] and seen[-1][0] == 12


def test_a_picture_of_the_wrong_size_is_refused(rooms, backbone):
    with pytest.raises(ValueError, match=r"\[1, 3, 64, 64\]"):
        fit_picture(rooms[0], torch.zeros(1, 3, 32, 32), rooms[1], backbone, QUICK)


def test_fit_files_refuse_damage_strangers_and_other_checkpoints(own_fit, rooms, tmp_path):
    _, outcome = own_fit
    generator, _ = rooms
    path = save_fit(outcome.fit, tmp_path)
    with pytest.raises(FitFileError, match="another checkpoint"):
        check_fits_generator(load_fit(path), generator, "0" * 64)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(FitFileError, match="SHA-256 differs"):
        load_fit(path, expect_sha256=outcome.state.fit)
    stranger = tmp_path / "x.fit.safetensors"
    from safetensors.torch import save_file
    save_file({"a": torch.zeros(2)}, str(stranger))
    with pytest.raises(FitFileError, match="not a SteerGAN fit file"):
        load_fit(stranger)
    pickle = tmp_path / "p.fit.safetensors"
    pickle.write_bytes(b"\x80\x04\x95" + b"\x00" * 64)
    with pytest.raises(FitFileError, match=str(pickle.name)):
        load_fit(pickle)


def test_a_missing_fit_file_names_what_was_looked_for(tmp_path, rooms, monkeypatch):
    monkeypatch.setenv("STEERGAN_FITS", str(tmp_path / "store"))
    state = dataclasses.replace(initial_state(rooms[0].config, 0), fit="ab" * 32)
    assert find_fit(state.fit, tmp_path / "s.json") is None
    with pytest.raises(FitFileError, match=fit_name("ab" * 32)):
        open_fit_for(state, tmp_path / "s.json", rooms[0], rooms[1])


def steergan(*args, cwd):
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})


def test_cli_fit_writes_a_session_that_renders_the_reconstruction(tmp_path):
    assert steergan("render", "--seed", "4", "-o", "own.png", cwd=tmp_path).returncode == 0
    out = steergan("fit", "own.png", "-o", "scenes/own.json", "--seconds", "2", "--preview", "rec.png", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "PSNR" in out.stdout and len(list((tmp_path / "scenes").glob("*.fit.safetensors"))) == 1
    back = steergan("render", "--session", "scenes/own.json", "-o", "back.png", cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    from PIL import Image
    back_px = np.asarray(Image.open(tmp_path / "back.png")).astype(int)
    rec_px = np.asarray(Image.open(tmp_path / "rec.png")).astype(int)
    # `render` runs the studio's thread count (app/studio.configure_render_threads), the fit
    # the machine's: float sums in another order may move a rare pixel by one level.
    assert np.abs(back_px - rec_px).max() <= 1 and (back_px == rec_px).mean() > 0.99
    for fit_file in (tmp_path / "scenes").glob("*.fit.safetensors"):
        fit_file.unlink()
    lost = steergan("render", "--session", "scenes/own.json", "-o", "lost.png", cwd=tmp_path)
    assert lost.returncode == 2 and ".fit.safetensors" in lost.stderr and "not beside" in lost.stderr


def test_cli_fit_of_a_bad_file_is_one_line(tmp_path):
    (tmp_path / "notes.png").write_text("not a picture")
    out = steergan("fit", "notes.png", "-o", "s.json", cwd=tmp_path)
    assert out.returncode == 2 and "notes.png" in out.stderr and "not an image" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and not (tmp_path / "s.json").exists()


def test_a_figure_is_fitted_pose_first(backbone):
    """The hierarchical path: the pose search, then the descent; the scene keeps its hierarchy
    and the search's choice is no worse than the segmenter's guess (candidate 0)."""
    from models.fit import optimize

    generator, sha = load_checkpoint(ROOT / "checkpoints" / "figures-cpu.safetensors")[0], "f" * 64
    picture = picture_tensor(render(generator, initial_state(generator.config, 6)).image)
    chosen = {}
    original = optimize._search_pose

    def spy(G, lat, params, target, perceptual, settings):
        guess = optimize._with(lat, params)
        before = float(torch.nn.functional.mse_loss(G(guess, noise_mode="const"), target)
                       + settings.feature_weight * perceptual(G(guess, noise_mode="const")))
        original(G, lat, params, target, perceptual, settings)
        after_image = G(optimize._with(lat, params), noise_mode="const")
        chosen["scores"] = before, float(torch.nn.functional.mse_loss(after_image, target)
                                         + settings.feature_weight * perceptual(after_image))

    optimize._search_pose = spy
    try:
        with torch.no_grad():
            outcome = fit_picture(generator, picture, sha, backbone, FitSettings(steps=5, seconds=600.0))
    finally:
        optimize._search_pose = original
    assert outcome.state.hierarchy is not None and outcome.state.fit == outcome.fit.sha256
    assert chosen["scores"][1] <= chosen["scores"][0] + 1e-6


def test_a_fit_file_put_back_is_found_and_a_damaged_copy_hides_no_good_one(own_fit, rooms, tmp_path, monkeypatch):
    """The render worker's cache looks again for a fit file it did not find once the files
    there change (the user put it back), saying the first miss only; a damaged copy beside
    the session does not hide a good one in the store, and saving the fit again repairs it."""
    import app.fit_worker as fit_worker

    _, outcome = own_fit
    generator, sha = rooms
    monkeypatch.setenv("STEERGAN_FITS", str(tmp_path / "store"))
    near = tmp_path / "scenes" / "s.json"
    near.parent.mkdir()
    said: list[str] = []
    cache = fit_worker.FitCache(said.append)
    assert cache.resolve(outcome.state, generator, str(near), sha)[1] is None and len(said) == 1
    assert cache.resolve(outcome.state, generator, str(near), sha)[1] is None and len(said) == 1  # said once
    beside = save_fit(outcome.fit, near.parent)  # put back
    assert cache.resolve(outcome.state, generator, str(near), sha)[1] is not None

    save_fit(outcome.fit, tmp_path / "store")
    damaged = bytearray(beside.read_bytes())
    damaged[-1] ^= 0xFF  # same size, other bytes
    beside.write_bytes(bytes(damaged))
    assert open_fit_for(outcome.state, near, generator, sha)[1] is not None  # the store's copy
    save_fit(outcome.fit, near.parent)
    assert file_sha256(beside) == outcome.state.fit


def test_cli_fit_refuses_an_untrained_checkpoint_as_the_studio_does(tmp_path, capsys):
    from app.cli import main
    from models.io.checkpoint import save_checkpoint
    from models.io.library import untrained_generator

    untrained = tmp_path / "untrained.safetensors"
    save_checkpoint(untrained, untrained_generator("tiny-rooms"), {"name": "noise"}, dtype=torch.float32)
    picture = tmp_path / "p.png"
    from PIL import Image
    Image.new("RGB", (32, 32), (90, 120, 200)).save(picture)
    assert main(["fit", str(picture), "--checkpoint", str(untrained), "-o", str(tmp_path / "s.json")]) == 2
    err = capsys.readouterr().err
    assert "no training record" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s.json").exists()
