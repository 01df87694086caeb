"""Issue 23: the projected discriminator on a frozen in-domain backbone, its recipe, its files."""
import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F

from models.config import ConfigError
from models.io.backbone_file import DEFAULT_BACKBONE, BackboneError, load_backbone
from models.nets.projected import FeatureBackbone, ProjectedDiscriminator, diff_augment
from models.training.configs import TRAINING_CONFIGS, TrainConfig, training_config
from models.training.trainer import Trainer


def test_projected_recipe_trains_and_keeps_the_backbone_frozen(tiny_backbone, tmp_path):
    trainer = Trainer(TRAINING_CONFIGS["tiny-rooms-projected"], tmp_path / "run", device="cpu")
    before = {k: v.clone() for k, v in trainer.D.backbone.state_dict().items()}
    heads_before = [p.detach().clone() for p in trainer.D.heads.parameters()]
    seen = {}
    for _ in range(3):
        seen.update(trainer.train_step())
    assert "r1" not in seen  # the hinge loss on a projected D needs no R1
    assert all(torch.isfinite(v) for v in seen.values())
    for k, v in trainer.D.backbone.state_dict().items():
        assert torch.equal(v, before[k]), k  # bit-identical, BatchNorm statistics included
    assert all(not p.requires_grad for p in trainer.D.backbone.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(heads_before, trainer.D.heads.parameters()))
    # the saved state holds the heads and the backbone's digest, never the backbone's weights
    assert not any(k.startswith("backbone.") for k in trainer.D.state_dict())
    trainer.save()
    again = Trainer(TRAINING_CONFIGS["tiny-rooms-projected"], tmp_path / "run2", device="cpu",
                    resume=tmp_path / "run")
    for a, b in zip(trainer.D.heads.parameters(), again.D.heads.parameters()):
        assert torch.equal(a, b)


def test_heads_refuse_another_backbone(tiny_backbone):
    D = ProjectedDiscriminator(load_backbone(tiny_backbone)[0], in_channels=4)
    torch.manual_seed(9)
    other = ProjectedDiscriminator(FeatureBackbone(["background", "thing"]), in_channels=4)
    with pytest.raises(RuntimeError, match="another backbone"):
        other.load_state_dict(D.state_dict())


def test_trained_heads_score_real_images_above_blurred_ones():
    """The shipped backbone: heads trained for a few steps tell real rooms from blurred ones."""
    from models.data import make_dataset

    backbone, _ = load_backbone(DEFAULT_BACKBONE)
    torch.manual_seed(0)
    D = ProjectedDiscriminator(backbone, in_channels=3, augment=False)
    opt = torch.optim.Adam([p for p in D.parameters() if p.requires_grad], lr=2e-3, betas=(0.0, 0.99))
    data, rng = make_dataset("rooms", 64, "cpu"), torch.Generator().manual_seed(1)

    def blur(x):
        return F.avg_pool2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), 5, stride=1)

    for _ in range(25):
        real = data.sample(8, rng).images
        loss = F.relu(1 - D(real)).mean() + F.relu(1 + D(blur(data.sample(8, rng).images))).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    D.eval()
    with torch.no_grad():
        held_out = data.sample(32, torch.Generator().manual_seed(99)).images
        real_score, blur_score = D(held_out).mean(), D(blur(held_out)).mean()
    assert real_score > blur_score + 0.5, (real_score, blur_score)


def test_augment_shifts_the_layout_channel_with_the_image():
    x = torch.zeros(4, 4, 16, 16)
    x[:, :3, 6:10, 6:10] = 1.0  # a bright square in RGB
    x[:, 3, 6:10, 6:10] = 1.0  # and the same square in the layout channel
    y = diff_augment(x, torch.Generator().manual_seed(2))
    gray = y[:, :3].mean(1)  # the square stays each image's brightest region (contrast > 0)
    bright = gray > gray.amax(dim=(1, 2), keepdim=True) - 1e-5
    assert torch.equal(bright, y[:, 3] > 0.5)  # the layout moved exactly as the image did
    assert set(y[:, 3].unique().tolist()) <= {0.0, 1.0}  # colour jitter never touches it


def test_unknown_recipe_is_one_error_naming_it(tmp_path):
    with pytest.raises(ConfigError, match="unknown recipe 'wgan'"):
        dataclasses.replace(TRAINING_CONFIGS["tiny-rooms"], recipe="wgan")
    bad = tmp_path / "cfg.json"
    bad.write_text(json.dumps({**TRAINING_CONFIGS["tiny-rooms"].to_dict(), "recipe": "wgan"}))
    with pytest.raises(ConfigError, match=r"cfg\.json: unknown recipe"):
        training_config(str(bad))
    # a config without the field (written before issue 23) is today's StyleGAN2 recipe
    old = {k: v for k, v in TRAINING_CONFIGS["rooms-cpu-stylegan2"].to_dict().items() if k != "recipe"}
    assert TrainConfig.from_dict(old).recipe == "stylegan2"


@pytest.mark.parametrize("content, problem", [
    (None, "missing"), (b"\x80\x04junk", "header"), ("probe", "not a SteerGAN discriminator backbone")])
def test_missing_or_damaged_backbone_is_one_line(tmp_path, monkeypatch, content, problem):
    path = tmp_path / "bb.safetensors"
    if content == "probe":
        from models.metrics.probe import DEFAULT_PROBE
        path.write_bytes(DEFAULT_PROBE.read_bytes())  # a real safetensors file, but the probe
    elif content is not None:
        path.write_bytes(content)
    monkeypatch.setenv("STEERGAN_D_BACKBONE", str(path))
    with pytest.raises(BackboneError) as info:
        Trainer(TRAINING_CONFIGS["tiny-rooms-projected"], tmp_path / "run", device="cpu")
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    assert problem in message or (problem == "header" and "safetensors" in message.lower()), message


def test_cli_names_a_missing_backbone(tmp_path, monkeypatch, capsys):
    from app.cli import main

    monkeypatch.setenv("STEERGAN_D_BACKBONE", str(tmp_path / "nope.safetensors"))
    assert main(["train", "tiny-rooms-projected", "--out", str(tmp_path / "r"), "--steps", "1",
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.safetensors" in err[0] and "backbone is missing" in err[0]


def test_old_warm_state_without_a_recipe_still_loads(tmp_path):
    """A warm state written before issue 23 (its config names no recipe) continues as stylegan2."""
    from models.training.gpu_worker import WarmTrainer
    from models.training.state import save_warm_state

    cfg = TRAINING_CONFIGS["tiny-rooms-layout"]
    first = WarmTrainer(cfg, tmp_path / "a", "cpu")
    info = {"config": {k: v for k, v in cfg.to_dict().items() if k != "recipe"}, "step": 7, "images_seen": 28}
    save_warm_state(tmp_path / "old.safetensors", {"G": first.G, "G_ema": first.G_ema, "D": first.D}, info)
    second = WarmTrainer(cfg, tmp_path / "b", "cpu")
    second.warm_start(tmp_path / "old.safetensors")
    assert second.images_seen == 28


def test_translation_only_augment_keeps_colours():
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    y = diff_augment(x, torch.Generator().manual_seed(4), colour=False)
    values = set(x.flatten().tolist()) | {0.0}  # shifted pixels, and the zero border
    assert set(y.flatten().tolist()) <= values


def test_ema_rampup_follows_g_while_few_images_are_seen(tmp_path):
    cfg = dataclasses.replace(TRAINING_CONFIGS["tiny-rooms-layout"], ema_kimg=10.0, ema_rampup=0.05)
    trainer = Trainer(cfg, tmp_path, device="cpu")
    trainer.train_step()  # images seen were 0: a half-life of 0 images, so G_ema is G
    for a, b in zip(trainer.G_ema.parameters(), trainer.G.parameters()):
        assert torch.allclose(a, b)
    with pytest.raises(ConfigError, match="ema_rampup"):
        dataclasses.replace(cfg, ema_rampup=2.0)
    with pytest.raises(ConfigError, match="d_augment"):
        dataclasses.replace(cfg, d_augment="cutout")


def test_rgb_heads_see_the_pixels_the_features_barely_do(tiny_backbone):
    """d_rgb_heads: each head also gets the image at its scale, so a change of colour that
    the features hardly register reaches every head directly."""
    torch.manual_seed(3)
    plain = ProjectedDiscriminator(load_backbone(tiny_backbone)[0], in_channels=4, augment="none")
    torch.manual_seed(3)
    rgb = ProjectedDiscriminator(load_backbone(tiny_backbone)[0], in_channels=4, augment="none", rgb_heads=True)
    first = lambda D: D.heads[0].net[0].weight  # the 1x1 input conv's weight
    assert first(rgb).shape[1] == first(plain).shape[1] + 3
    x = torch.rand(2, 4, 64, 64) * 2 - 1
    x.requires_grad_(True)
    rgb.eval()(x).sum().backward()
    assert x.grad is not None and x.grad[:, :3].abs().sum() > 0
    cfg = training_config("rooms-cpu-proj-rgb")
    assert cfg.d_rgb_heads and not training_config("rooms-cpu-proj-shift").d_rgb_heads
    assert not TrainConfig.from_dict({k: v for k, v in cfg.to_dict().items() if k != "d_rgb_heads"}).d_rgb_heads


def test_mbstd_heads_see_a_batch_without_variety(tiny_backbone):
    """d_mbstd: a head's logits depend on the other images of the batch, so a batch of one
    image repeated (no variety: the colour collapse) scores differently from a varied batch
    holding that image; without it, each image is judged alone."""
    torch.manual_seed(4)
    x = torch.rand(8, 4, 64, 64) * 2 - 1
    same = x[:1].expand(8, -1, -1, -1).contiguous()
    for mbstd in (False, True):
        torch.manual_seed(3)
        D = ProjectedDiscriminator(load_backbone(tiny_backbone)[0], in_channels=4, augment="none", rgb_heads=True,
                                   mbstd=mbstd).eval()
        with torch.no_grad():
            alone, varied = D(same)[0], D(x)[0]
        if mbstd:
            assert (alone - varied).abs().max() > 1e-4
        else:
            assert torch.allclose(alone, varied, atol=1e-5)
    cfg = training_config("rooms-cpu-proj-mbstd")
    assert cfg.d_mbstd and cfg.d_rgb_heads and not training_config("rooms-cpu-proj-rgb").d_mbstd
    assert not TrainConfig.from_dict({k: v for k, v in cfg.to_dict().items() if k != "d_mbstd"}).d_mbstd


def test_mbstd_recipe_trains_saves_and_resumes(tiny_backbone, tmp_path):
    cfg = dataclasses.replace(TRAINING_CONFIGS["tiny-rooms-projected"], d_rgb_heads=True, d_mbstd=True)
    trainer = Trainer(cfg, tmp_path / "run", device="cpu")
    for _ in range(2):
        assert all(torch.isfinite(v) for v in trainer.train_step().values())
    trainer.save()
    again = Trainer(cfg, tmp_path / "run2", device="cpu", resume=tmp_path / "run")
    for a, b in zip(trainer.D.heads.parameters(), again.D.heads.parameters()):
        assert torch.equal(a, b)
    # heads without the channel do not take this state: a clear error, not a silent mix
    with pytest.raises(Exception, match="not a usable training state: D does not match"):
        Trainer(dataclasses.replace(cfg, d_mbstd=False), tmp_path / "run3", device="cpu", resume=tmp_path / "run")


def test_rgb_detail_head_sees_stripes_that_average_away(tiny_backbone):
    """d_rgb_detail: 2-px colour stripes and the flat colour they average to reach the finest
    head as different inputs; with area-averaged pixels (and the features held fixed) they
    are the same picture to every head."""
    flat = torch.zeros(2, 4, 64, 64)
    stripes = flat.clone()
    stripes[:, 0, :, 0::2], stripes[:, 0, :, 1::2] = 0.8, -0.8  # red flickers, averages to 0
    for detail in (False, True):
        torch.manual_seed(3)
        D = ProjectedDiscriminator(load_backbone(tiny_backbone)[0], in_channels=4, augment="none", rgb_heads=True,
                                   rgb_detail=detail).eval()
        fixed = [f.detach() for f in D.project(flat)]
        D.project = lambda x, fixed=fixed: fixed  # type: ignore[method-assign]  # the features stay blind
        with torch.no_grad():
            same = torch.allclose(D(flat), D(stripes), atol=1e-6)
        assert same != detail
    with pytest.raises(ConfigError, match="d_rgb_detail needs d_rgb_heads"):
        dataclasses.replace(training_config("rooms-cpu-proj-shift"), d_rgb_detail=True)


def test_rgb_detail_at_128_px_sees_the_images_own_pixels(tiny_backbone):
    """Above the backbone's 64 px the finest head takes the image at its own size (4x4 blocks
    at 128 px): 1-px stripes that a 64 px copy averages to a flat colour still reach it, and
    the segmenting head with it. Up to 64 px nothing changes (a 64 px D's saved heads load)."""
    flat = torch.zeros(2, 4, 128, 128)
    stripes = flat.clone()
    stripes[:, 0, :, 0::2], stripes[:, 0, :, 1::2] = 0.8, -0.8  # averages to 0 at 64 px
    outs = []
    for detail in (False, True):
        torch.manual_seed(3)
        D = ProjectedDiscriminator(load_backbone(tiny_backbone)[0], in_channels=4, augment="none", rgb_heads=True,
                                   rgb_detail=detail, segment_classes=3, image_size=128).eval()
        fixed = [f.detach() for f in D.project(F.interpolate(flat, size=(64, 64), mode="area"))]
        D.project = lambda x, fixed=fixed: fixed  # type: ignore[method-assign]  # the features stay blind
        with torch.no_grad():
            a, b = D.judge(flat), D.judge(stripes)
        # (the 64 px copy's antialiasing leaves the picture's rim a trace of the stripes: 1e-4)
        assert ((a.logits - b.logits).abs().max() > 1e-2) == detail
        assert ((a.classes - b.classes).abs().max() > 1e-2) == detail
        outs.append(D)
    assert outs[1].heads[0].net[0].in_channels - outs[0].heads[0].net[0].in_channels == 45  # 48 RGB channels, not 3
    with pytest.raises(ValueError, match="built for 128 px images, got 64 px"):
        outs[1].judge(torch.zeros(2, 4, 64, 64))
    torch.manual_seed(3)
    at64 = ProjectedDiscriminator(load_backbone(tiny_backbone)[0], in_channels=4, rgb_heads=True, rgb_detail=True)
    torch.manual_seed(3)
    small = ProjectedDiscriminator(load_backbone(tiny_backbone)[0], in_channels=4, rgb_heads=True, rgb_detail=True,
                                   image_size=32)
    assert {k: v.shape for k, v in at64.state_dict().items()} == {k: v.shape for k, v in small.state_dict().items()}


def test_segment_targets_come_from_the_layout():
    """d_segment's targets: a real pixel gets its rendered class (an object's kind + 1,
    background 0), every fake pixel the last class; G is asked for an object where its
    layout's heatmap is above 0.5, for background below 0.1, and nothing on the rim."""
    from models.data.batch import SceneBatch
    from models.metrics.probe import label_maps, probe_classes
    from models.training.losses import d_segment_loss, intended_classes

    classes = probe_classes()
    masks = torch.zeros(1, 2, 32, 32)
    masks[0, 0, 4:12, 4:12] = 1  # kind 2 at the top left
    masks[0, 1, 20:30, 16:28] = 1  # kind 0 at the bottom
    batch = SceneBatch(images=torch.zeros(1, 3, 32, 32), masks=masks, centers=torch.zeros(1, 2, 2),
                       kinds=torch.tensor([[2, 0]]), present=torch.ones(1, 2, dtype=torch.bool))
    labels = label_maps(batch, False, classes)
    assert labels[0, 8, 8] == 3 and labels[0, 25, 20] == 1 and labels[0, 0, 31] == 0
    assert set(labels.unique().tolist()) == {0, 1, 3}
    n = len(classes)
    # a D that names every real pixel's class and calls every fake pixel fake scores near 0
    right = F.one_hot(labels, n + 1).permute(0, 3, 1, 2).float() * 40
    fake_right = torch.zeros(1, n + 1, 32, 32)
    fake_right[:, n] = 40
    valid = torch.ones(1, 32, 32, dtype=torch.bool)
    assert d_segment_loss(right, labels, fake_right, valid) < 1e-6
    assert d_segment_loss(fake_right, labels, right, valid) > 10  # the other way round: badly wrong
    heat = torch.zeros(1, 1, 32, 32)
    heat[0, 0, 8:16, 8:16] = 0.3
    heat[0, 0, 10:14, 10:14] = 0.9
    obj, bg = intended_classes(heat, valid)
    assert obj[0, 12, 12] and not bg[0, 12, 12]
    assert bg[0, 0, 0] and not obj[0, 0, 0]
    assert not obj[0, 9, 9] and not bg[0, 9, 9]  # the rim: left to G


def test_segment_labels_move_with_the_augmented_image(tiny_backbone):
    """The shift of DiffAugment moves each pixel's label with it: the layout channel (shifted
    as part of the image) and the labels still agree after a random shift, and the padding
    that comes in is ignored (-1), never read as background."""
    D = ProjectedDiscriminator(load_backbone(tiny_backbone)[0], in_channels=4, augment="translation",
                               rgb_heads=True, segment_classes=3).train()
    D.aug_rng = torch.Generator().manual_seed(0)
    img = -torch.ones(6, 4, 64, 64)
    img[:, 3, 20:44, 24:40] = 1
    labels = torch.zeros(6, 64, 64, dtype=torch.long)
    labels[:, 20:44, 24:40] = 2
    judged = D.judge(img, labels)
    assert judged.classes is not None and judged.classes.shape == (6, 4, 32, 32)
    assert judged.labels is not None and judged.heat is not None
    inside, heat = judged.labels == 2, judged.heat[:, 0]
    # a label is one pixel of its 2x2 block (nearest), the heatmap the block's mean (area): an
    # inside label has at least a quarter of its block inside, a block all inside is labelled
    # inside; a label moved apart from its image by a pixel breaks both
    assert inside.any() and bool((heat[inside] >= 0.25).all()) and bool(inside[heat > 0.99].all())
    assert bool((heat[judged.labels == 0] <= 0.75).all())
    assert (judged.labels == -1).any()  # some shift brought padding in
    moved = [not torch.equal(inside[i], inside[0]) for i in range(1, 6)]
    assert any(moved)


def test_segment_head_learns_real_from_speckled(tiny_backbone):
    """A few D steps on real rooms against speckled ones (the iridescent noise of the relay's
    objects): the per-pixel head calls the speckled pixels fake more than the real ones."""
    from models.data import make_dataset
    from models.metrics.probe import label_maps, probe_classes
    from models.training.losses import d_segment_loss

    torch.manual_seed(0)
    classes = probe_classes()
    D = ProjectedDiscriminator(load_backbone(tiny_backbone)[0], in_channels=3, augment="none", rgb_heads=True,
                               segment_classes=len(classes)).train()
    opt = torch.optim.Adam([p for p in D.parameters() if p.requires_grad], lr=2e-3)
    data, rng = make_dataset("rooms", 64, "cpu"), torch.Generator().manual_seed(1)
    noise = torch.Generator().manual_seed(2)
    speckle = lambda x: (x + 0.25 * torch.randn(x.shape, generator=noise)).clamp(-1, 1)

    def fake_prob(x):
        with torch.no_grad():
            return D.eval().judge(x).classes.softmax(1)[:, -1].mean().item()

    for _ in range(60):
        batch = data.sample(4, rng)
        labels = label_maps(batch, False, classes)
        real, fake = D.judge(batch.images, labels), D.judge(speckle(batch.images), torch.zeros_like(labels))
        loss = d_segment_loss(real.classes, real.labels, fake.classes, fake.labels >= 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        D.train()
    test = data.sample(8, torch.Generator().manual_seed(99)).images
    assert fake_prob(speckle(test)) > fake_prob(test) + 0.05  # measured: 0.53 against 0.42


def test_segment_recipe_trains_saves_and_resumes(tiny_backbone, tmp_path):
    cfg = dataclasses.replace(TRAINING_CONFIGS["tiny-rooms-projected"], d_rgb_heads=True, d_segment=1.0)
    trainer = Trainer(cfg, tmp_path / "run", device="cpu")
    before = {k: v.clone() for k, v in trainer.D.backbone.state_dict().items()}
    seen = {}
    for _ in range(2):
        seen.update(trainer.train_step())
    assert {"segment_d", "segment_g"} <= set(seen) and all(torch.isfinite(v) for v in seen.values())
    for k, v in trainer.D.backbone.state_dict().items():
        assert torch.equal(v, before[k]), k
    trainer.save()
    again = Trainer(cfg, tmp_path / "run2", device="cpu", resume=tmp_path / "run")
    assert again.D.segment_head is not None
    for a, b in zip(trainer.D.segment_head.parameters(), again.D.segment_head.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(ConfigError, match="d_segment is a part of the projected D"):
        dataclasses.replace(TRAINING_CONFIGS["tiny-rooms"], d_segment=1.0)
    with pytest.raises(ConfigError, match="d_segment must be"):
        dataclasses.replace(cfg, d_segment=-1.0)


def test_colour_variety_reads_a_batch_of_one_grey_as_none(tiny_backbone):
    """d_rgb_variety: per place and channel, the spread of colours across a group of four;
    four copies of one picture read ~0 everywhere, four walls of different colours read their
    spread on the wall and ~0 where the pictures agree; every head gets it."""
    from models.nets.projected import colour_variety

    walls = torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.5, 0.5, 0.5]])
    rgb = walls[:, :, None, None].repeat(1, 1, 8, 8)
    rgb[:, :, 6:] = -0.5  # one floor for all
    spread = colour_variety(rgb)
    assert spread.shape == rgb.shape
    assert spread[:, :, :6].min() > 0.2 and spread[:, :, 6:].max() < 1e-3
    assert colour_variety(rgb[:1].repeat(4, 1, 1, 1)).max() < 1e-3
    assert torch.equal(colour_variety(rgb.repeat(2, 1, 1, 1))[:4], colour_variety(rgb.repeat(2, 1, 1, 1))[4:])
    torch.manual_seed(3)
    D = ProjectedDiscriminator(load_backbone(tiny_backbone)[0], in_channels=4, augment="none", rgb_heads=True,
                               rgb_variety=True).eval()
    assert all(h.net[0].weight.shape[1] == m + 1 + 3 + 3 for h, m in zip(D.heads, (32, 64, 96, 128)))
    x = torch.rand(8, 4, 64, 64) * 2 - 1
    with torch.no_grad():
        assert (D(x[:1].expand(8, -1, -1, -1))[0] - D(x)[0]).abs().max() > 1e-4


def test_pixel_d_beside_trains_gets_r1_and_warm_starts_from_heads_without_it(tiny_backbone, tmp_path):
    """d_pixel: a StyleGAN2 D on the pixels beside the heads; its loss and R1 enter D's step,
    its non-saturating loss G's; a state saved without it loads with a fresh pixel D."""
    plain = dataclasses.replace(TRAINING_CONFIGS["tiny-rooms-projected"], d_rgb_heads=True)
    cfg = dataclasses.replace(plain, d_pixel=1.0)
    trainer = Trainer(cfg, tmp_path / "run", device="cpu")
    assert trainer.D.pixel is not None and trainer._r1_target() is trainer.D.pixel
    pixel_before = [p.detach().clone() for p in trainer.D.pixel.parameters()]
    seen = {}
    for _ in range(2):  # r1_every 2: R1 on the first step
        seen.update(trainer.train_step())
    assert {"pixel_d", "pixel_g", "r1"} <= set(seen) and all(torch.isfinite(v) for v in seen.values())
    assert any(not torch.equal(a, b) for a, b in zip(pixel_before, trainer.D.pixel.parameters()))
    old = Trainer(plain, tmp_path / "old", device="cpu")
    assert "r1" not in old.train_step()  # the projected D alone needs no R1
    fresh = [p.detach().clone() for p in trainer.D.pixel.state_dict().values()]
    trainer.D.load_state_dict(old.D.state_dict())  # as a warm start (the relay's) loads D
    for a, b in zip(old.D.heads.parameters(), trainer.D.heads.parameters()):
        assert torch.equal(a, b)
    assert all(torch.equal(a, b) for a, b in zip(fresh, trainer.D.pixel.state_dict().values()))
    with pytest.raises(ConfigError, match="d_pixel is a part of the projected D"):
        dataclasses.replace(TRAINING_CONFIGS["tiny-rooms"], d_pixel=1.0)
