"""Issue 23, "adopt the winner ... clips included": clips on the projected recipe. The projected
D judges every frame with its per-pixel classes from that frame's rendered ground truth; the
video D judges the clip, in the pixel D's place (weighed by d_pixel, regularised by R1)."""
import dataclasses

import pytest
import torch

from models.data import make_dataset, render_clip_frames, sample_times
from models.metrics.probe import label_maps, probe_classes
from models.nets.video_discriminator import ClipsProjectedDiscriminator
from models.training.configs import TRAINING_CONFIGS, ConfigError, TrainConfig
from models.training.trainer import Trainer
from tests.conftest import warm_start_d_as_pixel_d


def test_a_clip_batch_as_frames_keeps_each_frames_ground_truth():
    data = make_dataset("clips-rooms", 32, n_objects=3)
    params = data.sample_params(2, torch.Generator().manual_seed(1))
    times = sample_times(2, 3, torch.Generator().manual_seed(2))
    clips = render_clip_frames(data.world, params, times, 32)
    frames = clips.frames()
    assert frames.images.shape == (6, 3, 32, 32) and frames.masks.shape[0] == 6
    for b in range(2):
        for t in range(3):
            assert torch.equal(frames.images[3 * b + t], clips.images[b, t])
            assert torch.equal(frames.masks[3 * b + t], clips.masks[b, t])
            assert torch.equal(frames.kinds[3 * b + t], clips.kinds[b])  # kinds are per clip
    # the unflatten round trip, and the labels a still batch would give each frame
    back = frames.unflatten(2, 3)
    assert torch.equal(back.images, clips.images) and torch.equal(back.kinds, clips.kinds)
    labels = label_maps(frames, False, probe_classes())
    assert labels.shape == (6, 32, 32) and labels.max() > 0  # objects labelled with their kinds
    assert ((labels > 0) == (frames.masks.amax(dim=1) > 0.5)).all()


def test_clips_train_on_the_projected_recipe(tiny_backbone, tmp_path):
    """Both Ds learn in one step, the frozen backbone stays bit-identical, R1 reaches the video
    D, and a saved state resumes."""
    cfg = TRAINING_CONFIGS["tiny-clips-projected"]
    trainer = Trainer(cfg, tmp_path / "run", device="cpu")
    D = trainer.D
    assert isinstance(D, ClipsProjectedDiscriminator) and D.frames.pixel is None
    assert trainer._r1_target() is D.pixel  # R1 on the video D
    backbone = {k: v.clone() for k, v in D.frames.backbone.state_dict().items()}
    heads = [p.detach().clone() for p in D.frames.heads.parameters()]
    video = [p.detach().clone() for p in D.pixel.parameters()]
    seen: dict = {}
    for _ in range(2):  # r1_every 2: R1 on the first step
        seen.update(trainer.train_step())
    assert {"video_d", "video_g", "segment_d", "segment_g", "r1", "loss_d", "loss_g", "move"} <= set(seen)
    assert all(torch.isfinite(v) for v in seen.values())
    assert all(torch.equal(backbone[k], v) for k, v in D.frames.backbone.state_dict().items())
    assert any(not torch.equal(a, b) for a, b in zip(heads, D.frames.heads.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(video, D.pixel.parameters()))
    trainer.save()
    again = Trainer(cfg, tmp_path / "run", device="cpu", resume=tmp_path / "run")
    assert again.step == 2
    assert all(torch.equal(a, b) for a, b in zip(trainer.D.state_dict().values(), again.D.state_dict().values()))
    assert not any(k.startswith("frames.backbone.") for k in trainer.D.state_dict())  # shipped once, not per state
    other = dict(trainer.D.state_dict())
    other["frames.backbone_digest"] = other["frames.backbone_digest"] + 1  # heads trained on another backbone
    with pytest.raises(RuntimeError, match="another backbone"):
        again.D.load_state_dict(other)


def test_a_stylegan2_clips_state_gives_its_video_d_to_the_projected_recipe(tiny_backbone, tmp_path):
    """The shipped clips model trained on the StyleGAN2 recipe: its state's video D becomes the
    projected recipe's video D, the frames' heads start new (as a still D becomes a pixel D)."""
    plain = TRAINING_CONFIGS["tiny-clips"]
    projected = TRAINING_CONFIGS["tiny-clips-projected"]
    plain = dataclasses.replace(plain, condition_d_on_layout=True, align_weight=0.0)  # as "clips" is
    warm_start_d_as_pixel_d(plain, projected, tmp_path, "frames.heads.")


def test_the_projected_recipe_for_clips_needs_its_video_d():
    with pytest.raises(ConfigError, match="video D, weighed by d_pixel"):
        dataclasses.replace(TRAINING_CONFIGS["tiny-clips-projected"], d_pixel=0.0)
    assert TRAINING_CONFIGS["clips"].recipe == "projected" and TRAINING_CONFIGS["clips"].d_pixel > 0
    assert TRAINING_CONFIGS["clips-stylegan2"].recipe == "stylegan2"  # the recipe before, selectable
    with pytest.raises(ConfigError, match="colour_match is not implemented for generators with time"):
        TrainConfig("x", "tiny-clips", "clips-rooms", align_weight=0.0, condition_d_on_layout=True, recipe="projected",
                    d_pixel=1.0, colour_match=1.0)


def test_move_consistency_on_clips_asks_each_frame_for_its_moved_object():
    """The term on a clip's frames at their own times (their motion codes kept through the
    move): positive for an untrained G, which does not carry its objects, and its gradients
    reach G."""
    from models.config import architecture
    from models.nets.generator import Generator
    from models.training.losses import move_consistency_loss
    from models.training.video_step import fake_clip_latents

    cfg = TRAINING_CONFIGS["tiny-clips-projected"]

    class Holder:  # what fake_clip_latents reads of a trainer
        layout = True

    holder = Holder()
    holder.G = Generator(architecture(cfg.architecture))
    holder.rng = torch.Generator().manual_seed(3)
    holder.data = make_dataset("clips-rooms", holder.G.config.resolution, n_objects=holder.G.config.objects)
    holder.device = torch.device("cpu")
    lat, times = fake_clip_latents(holder, 2)
    assert lat.batch == 6 and times.shape == (2, 3) and lat.motion_codes is not None
    images = holder.G(lat, noise_mode="const")
    loss = move_consistency_loss(holder.G, lat, images, generator_rng=torch.Generator().manual_seed(0))
    assert torch.isfinite(loss) and loss > 0  # an untrained G does not carry its objects
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in holder.G.parameters())
