"""The generator family: every capability on and off, determinism, steering inputs."""
import itertools
from dataclasses import replace

import numpy as np
import pytest
import torch

from models.config import ConfigError, GeneratorConfig
from models.document.scene import initial_state
from models.nets.generator import Generator
from models.nets.heatmaps import gaussian_heatmaps
from models.render import latents_for, render
from tests.conftest import with_live_offsets

TINY = dict(resolution=16, z_dim=8, w_dim=8, mapping_layers=1, channels={4: 8, 8: 8, 16: 4}, style_res=8)


def build(**caps) -> Generator:
    torch.manual_seed(0)
    g = Generator(GeneratorConfig(**TINY, **caps))
    g.update_w_avg(256)
    return g.eval().requires_grad_(False)


CAPABILITY_SETS = [dict(objects=o, grid=g, mtm=m) for o, g, m in itertools.product((0, 2), (0, 2), ((), (8, 16)))]
CAPABILITY_SETS += [dict(hierarchical=True, grid=g, mtm=m) for g, m in itertools.product((0, 2), ((), (8,)))]


@pytest.mark.parametrize("caps", CAPABILITY_SETS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_every_capability_combination_renders_and_trains(caps):
    g = build(**caps)
    state = initial_state(g.config, 3)
    frame = render(g, state, extras=True)
    assert frame.image.shape == (16, 16, 3) and frame.image.dtype == np.uint8
    assert {int(name.split(".")[0]) for name in frame.offsets} == set(caps.get("mtm", ()))
    assert bool(frame.heatmaps) == bool(caps.get("objects") or caps.get("hierarchical"))
    # differentiable end to end, batch > 1, random noise: what training needs
    g.requires_grad_(True).train()
    lat = g.sample_latents(3, torch.Generator().manual_seed(0))
    out = g(lat, noise_mode="random")
    assert out.shape == (3, 3, 16, 16) and torch.isfinite(out).all()
    out.square().mean().backward()
    grads = [p.grad for p in g.parameters() if p.requires_grad]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)


def test_same_state_same_pixels_bitwise(tiny_generators):
    for g in tiny_generators.values():
        s = initial_state(g.config, 5)
        a, b = render(g, s).image, render(g, s).image
        assert np.array_equal(a, b)
        # and a freshly built copy of the same weights gives the same pixels too
        clone = Generator(g.config)
        clone.load_state_dict(g.state_dict())
        assert np.array_equal(render(clone.eval(), s).image, a)


def test_moving_an_object_moves_its_heatmap(tiny_generators):
    g = tiny_generators["tiny-rooms"]
    s = initial_state(g.config, 0).with_object(0, center=(0.25, 0.25), sigma=0.1)
    moved = s.move_center(0, 0, (0.75, 0.5))
    size = 32
    for state, (cx, cy) in ((s, (0.25, 0.25)), (moved, (0.75, 0.5))):
        heat = g.object_heatmaps(latents_for(g, state), size)[0, 0]
        iy, ix = np.unravel_index(int(heat.argmax()), heat.shape)
        assert abs((ix + 0.5) / size - cx) <= 0.5 / size and abs((iy + 0.5) / size - cy) <= 0.5 / size
    assert not np.array_equal(render(g, s).image, render(g, moved).image)
    # the other object's heatmap did not move
    h0 = g.object_heatmaps(latents_for(g, s), size)[0, 1]
    h1 = g.object_heatmaps(latents_for(g, moved), size)[0, 1]
    assert torch.equal(h0, h1)


def test_objects_from_keeps_the_coarse_layers_blind_to_the_objects():
    """With objects from 8 px, moving an object leaves the 4 px image exactly as it was (the
    room's layout cannot follow the object) and still changes the full image; from 4 px the
    4 px image changes too. Both have the same weights, so one's state loads into the other."""
    coarse, full = {}, {}
    for start in (4, 8):
        g = build(objects=2, objects_from=start)
        lat = g.sample_latents(1, torch.Generator().manual_seed(3))
        lat.centers = torch.tensor([[[0.3, 0.3], [0.7, 0.6]]])
        moved = replace(lat, centers=torch.tensor([[[0.55, 0.4], [0.7, 0.6]]]))
        coarse[start] = [g(x, noise_mode="const", stop_at=4) for x in (lat, moved)]
        full[start] = [g(x, noise_mode="const") for x in (lat, moved)]
    assert torch.equal(coarse[8][0], coarse[8][1])
    assert (coarse[4][0] - coarse[4][1]).abs().max() > 1e-4
    assert (full[8][0] - full[8][1]).abs().max() > 1e-4
    a, b = build(objects=2), build(objects=2, objects_from=8)
    assert {k: v.shape for k, v in a.state_dict().items()} == {k: v.shape for k, v in b.state_dict().items()}
    b.load_state_dict(a.state_dict())


def test_blocks_from_keeps_the_coarse_layers_blind_to_the_blocks():
    """With blocks from 8 px, resampling a block leaves the 4 px image as it was (the 4 px
    layer draws from the global style, which then changes it) and still changes the image."""
    g = build(grid=2, blocks_from=8)
    lat = g.sample_latents(1, torch.Generator().manual_seed(4))
    z = lat.need("z_blocks").clone()
    z[0, 1] = torch.randn(z.shape[-1], generator=torch.Generator().manual_seed(9))
    resampled = replace(lat, z_blocks=z)
    other_global = replace(lat, z_global=torch.randn(lat.z_global.shape, generator=torch.Generator().manual_seed(8)))
    coarse = [g(x, noise_mode="const", stop_at=4) for x in (lat, resampled, other_global)]
    assert torch.equal(coarse[0], coarse[1]) and (coarse[0] - coarse[2]).abs().max() > 1e-4
    assert (g(lat, noise_mode="const") - g(resampled, noise_mode="const")).abs().max() > 1e-4
    plain = build(grid=2)
    before, after = (plain(x, noise_mode="const", stop_at=4) for x in (lat, resampled))
    assert (before - after).abs().max() > 1e-4


def test_sigma_zero_or_hidden_removes_the_object(tiny_generators):
    g = tiny_generators["tiny-rooms"]
    s = initial_state(g.config, 0)
    for removed in (s.with_object(0, sigma=0.0), s.with_object(0, visible=False)):
        heat = g.object_heatmaps(latents_for(g, removed), 16)
        assert heat[0, 0].abs().max() == 0 and heat[0, 1].max() > 0.5


def test_gaussian_heatmap_is_the_gaussian():
    h = gaussian_heatmaps(torch.tensor([[[0.5, 0.25]]]), torch.tensor([[0.2]]), 8)[0, 0]
    y, x = 3, 5
    px, py = (x + 0.5) / 8, (y + 0.5) / 8
    expect = np.exp(-((px - 0.5) ** 2 + (py - 0.25) ** 2) / (2 * 0.2 ** 2))
    assert float(h[y, x]) == pytest.approx(expect, rel=1e-5)


def test_object_style_and_block_seeds_change_the_image(tiny_generators):
    g = tiny_generators["tiny-rooms"]
    s = initial_state(g.config, 0)
    base = render(g, s).image
    assert not np.array_equal(base, render(g, s.with_object(0, style_seed=12345)).image)
    assert not np.array_equal(base, render(g, s.resample_blocks([0], 7)).image)


def test_offset_scale_is_a_forward_input():
    g = build(objects=2, grid=2, mtm=(8, 16))
    s = initial_state(g.config, 0)
    off = replace(s, offsets_on=False)
    # freshly initialised predictors output zero offsets: on and off are the same image
    assert np.array_equal(render(g, s).image, render(g, off).image)
    with_live_offsets(g)
    on_frame, off_frame = render(g, s, extras=True), render(g, off, extras=True)
    assert not np.array_equal(on_frame.image, off_frame.image)
    assert all(np.abs(f).max() == 0 for f in off_frame.offsets.values())
    assert all(np.abs(f).max() > 0 for f in on_frame.offsets.values())
    half = render(g, replace(s, offset_strength=0.5), extras=True)
    # the first MTM layer sees the same input either way, so its offsets scale exactly
    np.testing.assert_allclose(half.offsets["8.0"], on_frame.offsets["8.0"] * 0.5, rtol=1e-5, atol=1e-6)


def test_truncation_zero_gives_the_average_style(tiny_generators):
    g = tiny_generators["tiny-plain"]
    s = initial_state(g.config, 0)
    a = render(g, replace(s, truncation=0.0, background_seed=1)).image
    b = render(g, replace(s, truncation=0.0, background_seed=2)).image
    assert np.array_equal(a, b)
    assert not np.array_equal(render(g, replace(s, background_seed=1)).image,
                              render(g, replace(s, background_seed=2)).image)


def test_bfloat16_inference_close_to_float32(tiny_generators):
    for g in tiny_generators.values():
        s = initial_state(g.config, 4)
        a = render(g, s).image.astype(int)
        b = render(g, s, precision="bfloat16").image.astype(int)
        assert np.abs(a - b).mean() < 12  # bf16 keeps 8 bits of mantissa
    with pytest.raises(ValueError, match="precision"):
        render(g, s, precision="float8")


def test_discriminator_exposes_gradcam_features():
    from models.nets.discriminator import Discriminator

    d = Discriminator(resolution=32, channels={4: 16, 8: 16, 16: 8, 32: 8})
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    logits, feats = d(x, return_features=True)
    assert logits.shape == (2, 1)
    assert {k: tuple(v.shape[-2:]) for k, v in feats.items()} == {4: (4, 4), 8: (8, 8), 16: (16, 16)}
    logits.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("bad, message", [
    (dict(resolution=48), "resolution"),
    (dict(objects=2, hierarchical=True), "exclusive"),
    (dict(mtm=(64,)), "mtm"),
    (dict(grid=-1), "grid"),
    (dict(channels={4: 8}), "channels"),
    (dict(hierarchical=True, layout_prior="crowd"), "layout_prior must be one of"),
    (dict(objects=2, layout_prior="skeleton"), "is for hierarchical generators"),
    (dict(objects=2, objects_from=12), "objects_from must be a synthesis resolution"),
    (dict(objects=2, objects_from=32), "objects_from must be a synthesis resolution"),
    (dict(grid=2, blocks_from=3), "blocks_from must be a synthesis resolution"),
    (dict(object_sprites=4), "object_sprites needs objects"),
    (dict(objects=2, object_sprites=65), "object_sprites must be between 0"),
])
def test_bad_configs_are_rejected(bad, message):
    with pytest.raises(ConfigError, match=message):
        GeneratorConfig(**{**TINY, **bad})


def test_config_json_round_trip_and_time_is_accepted():
    cfg = GeneratorConfig(**TINY, objects=2, grid=2, mtm=(8,), time={"motion_every": 4})
    assert GeneratorConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.capabilities()["time"] is True
    with pytest.raises(ConfigError, match="unknown generator config keys"):
        GeneratorConfig.from_dict({**cfg.to_dict(), "wings": 2})
    with pytest.raises(ConfigError, match="objects must be an integer"):
        GeneratorConfig.from_dict({**cfg.to_dict(), "objects": "3"})
    figure = GeneratorConfig(**TINY, hierarchical=True, layout_prior="skeleton")
    assert GeneratorConfig.from_dict(figure.to_dict()) == figure
    older = {k: v for k, v in figure.to_dict().items() if k != "layout_prior"}  # a checkpoint from before it
    assert GeneratorConfig.from_dict(older).layout_prior == "free"
    with pytest.raises(ConfigError, match="layout_prior must be a string"):
        GeneratorConfig.from_dict({**figure.to_dict(), "layout_prior": 1})


def test_skeleton_layout_prior_places_the_parts_like_a_person():
    """Generators trained on figure skeletons sample (and start new scenes with) person-like
    hierarchies: head and shoulders above the torso centre, knees below, feet below the
    knees; the "free" prior does not. Both take the same random draws."""
    from models.document.scene import draw_scene
    from models.nets.heatmaps import sample_hierarchy

    g_free, g_skel = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    free = sample_hierarchy(2000, g_free)
    skel = sample_hierarchy(2000, g_skel, layout_prior="skeleton")
    assert torch.equal(g_free.get_state(), g_skel.get_state())
    root, off1, off2 = skel
    assert ((root >= 0.15) & (root <= 0.85)).all()
    assert (off1[:, 0, 1] < 0).float().mean() > 0.99 and (off1[:, 1, 1] > 0).float().mean() > 0.99
    assert (off2[:, 2:, 1] > 0).float().mean() > 0.85  # feet below the knees
    assert (free[1][:, 0, 1] < 0).float().mean() < 0.6  # the free prior: anywhere
    with pytest.raises(ValueError, match="layout_prior"):
        sample_hierarchy(1, layout_prior="crowd")
    scenes = [draw_scene(seed, 0, True, 0, layout_prior="skeleton") for seed in range(50)]
    assert all(s.hierarchy.offsets1[0][1] < 0 < s.hierarchy.offsets1[1][1] for s in scenes)
    free_scenes = [draw_scene(seed, 0, True, 0) for seed in range(50)]
    assert not all(s.hierarchy.offsets1[0][1] < 0 < s.hierarchy.offsets1[1][1] for s in free_scenes)
