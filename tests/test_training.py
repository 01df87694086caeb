"""Training: tiny configs for a few steps on CPU; every loss term alive; exact resume."""
import csv
import dataclasses

import pytest
import torch

from models.config import ConfigError
from models.io.checkpoint import load_checkpoint
from models.nets.generator import Generator
from models.nets.heatmaps import block_outside_mask
from models.training.configs import TRAINING_CONFIGS, training_config
from models.training.losses import alignment_loss, distortion_loss
from models.training.state import TrainStateError
from models.training.trainer import Trainer


@pytest.mark.parametrize("name", ["tiny-rooms", "tiny-figures", "tiny-rooms-layout", "tiny-figures-layout"])
def test_tiny_config_trains_with_every_term(name, tmp_path):
    trainer = Trainer(TRAINING_CONFIGS[name], tmp_path, device="cpu")
    seen = {}
    for _ in range(3):
        stats = trainer.train_step()
        assert all(torch.isfinite(v) for v in stats.values()), stats  # tensors: read when logged
        seen.update(stats)
    assert "r1" in seen
    if trainer.layout:  # D sees the heatmap as a 4th channel instead of the GradCAM term
        assert trainer.D.from_rgb.weight.shape[1] == 4 and "align" not in seen
    else:
        assert seen["align"] > 0
    if trainer.gen_config.grid:
        assert seen["distortion"] > 0
    assert trainer.images_seen == 3 * trainer.batch


def test_figure_layout_follows_the_skeletons(tmp_path):
    """figures-cpu's layout-conditional D: G gets the hierarchy of real figures, and the 4th
    channel that D sees of a real image is hot on the figure and cold away from it."""
    from models.data.figures import KEYPOINTS, skeleton_hierarchy
    from models.nets.heatmaps import hierarchy_centers

    trainer = Trainer(TRAINING_CONFIGS["tiny-figures-layout"], tmp_path, device="cpu")
    real = trainer.data.sample(6, torch.Generator().manual_seed(3))
    root, off1, off2 = skeleton_hierarchy(real.keypoints)
    levels = hierarchy_centers(root, off1, off2)
    kp = {name: real.keypoints[:, i] for i, name in enumerate(KEYPOINTS)}
    assert torch.allclose(levels[0][:, 0], real.centers[:, 0], atol=1e-6)  # the root is the torso centre
    assert torch.allclose(levels[2], torch.stack([kp["r_wrist"], kp["l_wrist"], kp["r_ankle"], kp["l_ankle"]], 1))
    seen = trainer._with_layout(real.images, trainer._real_layout(real))
    assert seen.shape[1] == 4
    heat = (seen[:, 3] + 1) / 2
    on_figure = (heat * real.masks[:, 0]).sum() / real.masks[:, 0].sum()
    off_figure = (heat * (1 - real.masks[:, 0])).sum() / (1 - real.masks[:, 0]).sum()
    assert on_figure > 2 * off_figure, (on_figure, off_figure)
    # G's latents carry real hierarchies, not the prior's random ones
    trainer.rng.manual_seed(3)
    lat = trainer._latents(6)
    assert lat.root is not None and lat.offsets2 is not None
    assert (lat.offsets1[:, 1, 1] > lat.offsets1[:, 0, 1]).all()  # the knees below the shoulders, every one


def test_layout_conditioning_needs_a_layout():
    with pytest.raises(ConfigError, match="skeletons"):
        dataclasses.replace(TRAINING_CONFIGS["tiny-figures-layout"], dataset="rooms")
    with pytest.raises(ConfigError, match="objects or hierarchical"):
        dataclasses.replace(TRAINING_CONFIGS["tiny-figures-layout"], architecture="tiny-plain")


def test_alignment_and_distortion_are_differentiable_for_g():
    from models.io.library import untrained_generator
    from models.nets.discriminator import Discriminator

    G = untrained_generator("tiny-rooms").requires_grad_(True)
    D = Discriminator(32, G.config.channels)
    lat = G.sample_latents(2, torch.Generator().manual_seed(0))
    img = G(lat, noise_mode="const")
    align = alignment_loss(G, D, lat, img)
    (g_align,) = torch.autograd.grad(align, [G.convs["8"][0].weight], retain_graph=True)
    assert g_align.abs().sum() > 0
    assert all(p.grad is None for p in D.parameters())  # D stays frozen for this term
    assert all(p.requires_grad for p in D.parameters())  # and is unfrozen afterwards
    dist = distortion_loss(G, lat, img, generator_rng=torch.Generator().manual_seed(1))
    (g_dist,) = torch.autograd.grad(dist, [G.mapping.net[0].weight])
    assert dist > 0 and g_dist.abs().sum() > 0


def test_block_outside_mask():
    m = block_outside_mask(torch.tensor([0, 3]), grid=2, size=4)
    assert m[0, 0, :2, :2].sum() == 0 and m[0, 0, 2:, :].sum() == 8
    assert m[1, 0, 2:, 2:].sum() == 0 and m[1].sum() == 12


def test_resume_is_bit_exact(tmp_path):
    cfg = TRAINING_CONFIGS["tiny-rooms"]
    straight = stepped(cfg, tmp_path / "a", 4)
    first = Trainer(cfg, tmp_path / "b")
    first.run(max_steps=2)
    resumed = Trainer(cfg, tmp_path / "c", resume=tmp_path / "b")
    assert resumed.step == 2
    resumed.run(max_steps=4)
    assert_same_weights(straight, resumed)


def stepped(cfg, folder, steps: int) -> Trainer:
    """A trainer after `steps` train steps, never stopped or saved: what a resume must equal."""
    trainer = Trainer(cfg, folder)
    for _ in range(steps):
        trainer.train_step()
    return trainer


def assert_same_weights(a: Trainer, b: Trainer) -> None:
    """G, D and G_ema bit-identical: a resumed run is the run that never stopped."""
    for name in ("G", "D", "G_ema"):
        wa, wb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        for k in wa:
            assert torch.equal(wa[k], wb[k]), f"{name}.{k} differs after resume"


def test_run_writes_checkpoint_log_and_samples(tmp_path):
    trainer = Trainer(TRAINING_CONFIGS["tiny-figures"], tmp_path)
    ckpt = trainer.run(max_steps=2)
    G, info = load_checkpoint(ckpt)
    assert isinstance(G, Generator) and info.trained and info.meta["trained_on"]["steps"] == 2
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2]
    assert list((tmp_path / "samples").glob("*.png"))
    assert ckpt.stat().st_size < 16 * 2**20


def test_minutes_budget_stops_and_saves(tmp_path):
    trainer = Trainer(TRAINING_CONFIGS["tiny-rooms"], tmp_path)
    ckpt = trainer.run(minutes=0.001)
    assert ckpt.exists() and (tmp_path / "train_state.safetensors").exists()


def test_bad_configs_and_resume_files(tmp_path):
    with pytest.raises(ConfigError, match="unknown training config"):
        training_config("nope")
    bad = tmp_path / "c.json"
    bad.write_text('{"name": "x", "architecture": "tiny-rooms", "dataset": "rooms", "lr": 1, "wings": 2}')
    with pytest.raises(ConfigError, match="wings"):
        training_config(str(bad))
    with pytest.raises(TrainStateError, match="no such"):
        Trainer(TRAINING_CONFIGS["tiny-rooms"], tmp_path, resume=tmp_path / "missing.safetensors")


def test_non_finite_weight_stops_and_keeps_the_last_good_state(tmp_path):
    from models.training.trainer import TrainingDiverged

    trainer = Trainer(TRAINING_CONFIGS["tiny-rooms"], tmp_path)
    trainer.run(max_steps=2)
    state, ckpt = tmp_path / "train_state.safetensors", tmp_path / "tiny-rooms.safetensors"
    before = state.read_bytes(), ckpt.read_bytes()
    with torch.no_grad():
        trainer.G.mapping.net[0].weight[0, 0] = float("nan")
    with pytest.raises(TrainingDiverged, match=r"step \d+: .* not finite"):
        trainer.run(max_steps=4)
    assert (state.read_bytes(), ckpt.read_bytes()) == before  # the good state, untouched
    with pytest.raises(TrainingDiverged, match=r"weight G\.\S+ is not finite"):
        trainer.save()  # nor would an explicit save write NaN weights


def test_cli_train_reports_divergence_without_traceback(tmp_path, capsys):
    from app.cli import main

    cfg = tmp_path / "wild.json"
    # An absurd learning rate: the weights blow up within a few steps.
    cfg.write_text('{"name": "wild", "architecture": "tiny-rooms", "dataset": "rooms", "lr": 1e30, "batch": 2,'
                   ' "log_every": 1, "sample_every": 1000}')
    assert main(["train", str(cfg), "--steps", "6", "--out", str(tmp_path / "run"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "steergan train: error: step" in err and "not finite" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "train_state.safetensors").exists()


def test_resumed_log_does_not_repeat_steps(tmp_path):
    cfg = TRAINING_CONFIGS["tiny-rooms"]
    Trainer(cfg, tmp_path).run(max_steps=2)
    with open(tmp_path / "log.csv", "a", newline="") as f:  # rows written after the save, then a crash
        f.write("3,12,1.0,1.0,0.5,0.5,,,\r\n4,16,1.2,1.0,0.5,0.5,,,\r\n")
    resumed = Trainer(cfg, tmp_path, resume=tmp_path)
    resumed.run(max_steps=5)
    steps = [int(r["step"]) for r in csv.DictReader(open(tmp_path / "log.csv"))]
    assert steps == [1, 2, 3, 4, 5]
    assert float(list(csv.DictReader(open(tmp_path / "log.csv")))[2]["loss_d"]) != 0.5  # the new row 3


def test_move_term_is_logged_and_an_older_log_gets_the_new_column(tmp_path):
    """The move-consistency loss is in log.csv; resuming into a log written before that
    column existed rewrites its header, so the new rows' columns line up with it."""
    cfg = dataclasses.replace(TRAINING_CONFIGS["tiny-rooms"], move_weight=1.0, move_every=1, log_every=1)
    Trainer(cfg, tmp_path).run(max_steps=2)
    log = tmp_path / "log.csv"
    rows = list(csv.DictReader(open(log)))
    assert all(float(r["move"]) >= 0 for r in rows)
    old_fields = ["step", "images", "seconds", "images_per_s", "loss_d", "loss_g", "r1", "align", "distortion"]
    log.write_text("\r\n".join([",".join(old_fields)] + [",".join(r[k] for k in old_fields) for r in rows]) + "\r\n")
    Trainer(cfg, tmp_path, resume=tmp_path).run(max_steps=3)
    rows = list(csv.DictReader(open(log)))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert rows[0]["move"] == "" and float(rows[2]["move"]) >= 0
    assert int(rows[2]["images"]) == 3 * cfg.batch  # the columns line up with the header


def test_terms_of_every_nth_step_reach_the_log_when_the_logged_step_has_none(tmp_path):
    """Steps run with the counter before its increment, so with log_every=2 and the terms
    every 2nd step each logged step computed none of them: their last values are logged."""
    cfg = dataclasses.replace(TRAINING_CONFIGS["tiny-rooms"], move_weight=1.0, move_every=2, distortion_every=2,
                              r1_every=2, align_every=2, log_every=2)
    Trainer(cfg, tmp_path).run(max_steps=4)
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [int(r["step"]) for r in rows] == [2, 4]
    for r in rows:
        assert all(r[k] != "" and float(r[k]) >= 0 for k in ("r1", "align", "distortion", "move")), r


def test_losses_are_read_once_per_log_interval_and_a_late_nan_is_still_caught(tmp_path):
    """Steps keep their losses as tensors (no device sync a step); they are read at log
    steps, before saves and at the end, so a non-finite one between logs still stops the
    run before anything is saved, naming its step."""
    from models.training.trainer import TrainingDiverged

    cfg = dataclasses.replace(TRAINING_CONFIGS["tiny-rooms"], log_every=1000)
    trainer = Trainer(cfg, tmp_path)
    stats = trainer.train_step()
    assert stats and all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in stats.values())
    pending = [(1, stats), (2, {"loss_d": torch.tensor(0.5), "loss_g": torch.tensor(1.5)})]
    newest = trainer._settle(pending)
    assert pending == [] and (newest["loss_d"], newest["loss_g"]) == (0.5, 1.5)  # step 2's
    assert set(newest) == set(stats) and newest.get("r1") == stats["r1"].item()  # the rest: step 1's
    with torch.no_grad():
        trainer.G.mapping.net[0].weight[0, 0] = float("nan")
    with pytest.raises(TrainingDiverged, match=r"step 2: .*not finite"):
        trainer.run(max_steps=3)  # steps 2 and 3, no log step: caught at the end
    assert not (tmp_path / "train_state.safetensors").exists()


def test_real_images_rendered_in_chunks_are_handed_out_a_batch_a_step(tmp_path):
    """real_chunk = 4: one render of 4 batches serves 4 steps, each a different batch, the
    same images one render of 4 x B gives; the 5th step renders the next chunk."""
    cfg = dataclasses.replace(TRAINING_CONFIGS["tiny-rooms-layout"], batch=2, real_chunk=4)
    trainer = Trainer(cfg, tmp_path, device="cpu")
    start = trainer.rng.get_state()
    renders = []
    sample = trainer.data.sample
    trainer.data.sample = lambda B, g: renders.append(B) or sample(B, g)  # type: ignore[method-assign]
    got = [trainer._real_batch(2) for _ in range(5)]
    assert renders == [8, 8]
    expected = sample(8, torch.Generator().set_state(start))
    for i in range(4):
        assert torch.equal(got[i].images, expected.images[2 * i:2 * i + 2])
        assert torch.equal(got[i].centers, expected.centers[2 * i:2 * i + 2])
    assert not torch.equal(got[0].images, got[1].images)
    assert not torch.equal(got[4].images, got[0].images)
    trainer.data.sample = sample  # type: ignore[method-assign]
    trainer._real_queue.clear()
    stats = trainer.train_step()  # and a whole step trains on them
    assert all(torch.isfinite(v) for v in stats.values())
    with pytest.raises(ConfigError, match="real_chunk"):
        dataclasses.replace(cfg, real_chunk=0)
