"""The procedural data sets: determinism, shapes, and that the ground truth is right."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from models.data import (
    DATASETS,
    KEYPOINTS,
    ROOM_KINDS,
    add_room_motion,
    make_dataset,
    render_clip_frames,
    render_figures,
    render_rooms,
    sample_clip_params,
    sample_figures,
    sample_rooms,
)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def centroid(mask: torch.Tensor) -> torch.Tensor:
    """[..., S, S] -> [..., 2] (x, y) area centroid in normalised units."""
    s = mask.shape[-1]
    c = (torch.arange(s, dtype=mask.dtype) + 0.5) / s
    area = mask.sum((-2, -1)).clamp_min(1e-8)
    return torch.stack([(mask.sum(-2) * c).sum(-1) / area, (mask.sum(-1) * c).sum(-1) / area], -1)


def two_apart_objects() -> object:
    """Rooms with two small objects present, far apart (top left, bottom right)."""
    p = sample_rooms(6, 2, gen(5))
    return dataclasses.replace(p, present=torch.ones_like(p.present),
                               center=torch.tensor([[.25, .3], [.72, .7]]).expand(6, 2, 2).clone(),
                               half_size=p.half_size.clamp(max=0.1), rotation=torch.zeros_like(p.rotation))


@pytest.mark.parametrize("name", DATASETS)
def test_same_seed_same_batch_other_seed_other_batch(name):
    data = make_dataset(name, 32)
    a, b, c = (data.sample(3, gen(s)).images for s in (1, 1, 2))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    if data.is_clips:
        (x, tx), (y, ty) = data.sample_clips(2, 3, gen(4)), data.sample_clips(2, 3, gen(4))
        assert torch.equal(x, y) and torch.equal(tx, ty)


@pytest.mark.parametrize("name", DATASETS)
def test_shapes_dtypes_and_ranges(name):
    batch = make_dataset(name, 32, n_objects=3).sample(5, gen(0))
    n = 1 if name.endswith("figures") else 3
    assert batch.images.shape == (5, 3, 32, 32) and batch.images.dtype == torch.float32
    assert batch.images.min() >= -1 and batch.images.max() <= 1
    assert batch.masks.shape == (5, n, 32, 32) and batch.masks.min() >= 0 and batch.masks.max() <= 1
    assert batch.centers.shape == (5, n, 2) and batch.kinds.shape == (5, n) and batch.kinds.dtype == torch.long
    assert batch.present.dtype == torch.bool and batch.present.any(1).all()  # at least one object per scene
    assert torch.equal(batch.kinds == -1, ~batch.present)
    assert batch.kinds.max() < len(ROOM_KINDS)
    assert (batch.masks[~batch.present] == 0).all()  # absent slots have empty masks
    if name.endswith("figures"):
        assert batch.keypoints.shape == (5, len(KEYPOINTS), 2)


@pytest.mark.parametrize("size", [16, 256])
def test_any_power_of_two_size(size):
    batch = make_dataset("rooms", size).sample(2, gen(0))
    assert batch.images.shape == (2, 3, size, size)


def test_clip_sampling_gives_sorted_times_in_range():
    images, times = make_dataset("clips-figures", 16).sample_clips(4, 3, gen(0))
    assert images.shape == (4, 3, 3, 16, 16) and times.shape == (4, 3)
    assert (times.diff(dim=1) >= 0).all() and times.min() >= 0 and times.max() <= 4.0


def test_unknown_names_are_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="'kitchens'.*rooms.*figures"):
        make_dataset("kitchens", 64)
    with pytest.raises(ValueError, match="no clips"):
        make_dataset("rooms", 16).sample_clips(1, 3, gen(0))
    with pytest.raises(ValueError, match="size"):
        make_dataset("rooms", 48)


def test_lone_object_mask_is_centred_on_its_reported_center():
    p = sample_rooms(24, 1, gen(3))  # one slot: the object is always present and unoccluded
    p = dataclasses.replace(p, center=0.5 + (p.center - 0.5) * 0.3)  # keep it inside the frame
    batch = render_rooms(p, 128)
    assert set(p.kind[:, 0].tolist()) == set(range(len(ROOM_KINDS)))  # every kind checked
    assert (batch.masks.amax((2, 3)) > 0.99).all()
    assert (centroid(batch.masks[:, 0]) - batch.centers[:, 0]).abs().max() < 0.02


def test_moved_moves_one_mask_and_nothing_else():
    p = two_apart_objects()
    before = render_rooms(p, 128)
    after = render_rooms(p.moved(0, (0.05, -0.03)), 128)
    shift = centroid(after.masks[:, 0]) - centroid(before.masks[:, 0])
    assert torch.allclose(shift, torch.tensor([0.05, -0.03]).expand(6, 2), atol=3e-3)
    assert torch.allclose(after.centers[:, 0] - before.centers[:, 0], torch.tensor([0.05, -0.03]).expand(6, 2))
    assert torch.equal(after.masks[:, 1], before.masks[:, 1]) and torch.equal(after.centers[:, 1], before.centers[:, 1])
    untouched = (before.masks[:, 0] + after.masks[:, 0] == 0)[:, None].expand_as(before.images)
    assert untouched.float().mean() > 0.5
    assert torch.equal(after.images[untouched], before.images[untouched])
    # Per-scene object index and delta.
    per_scene = p.moved(torch.tensor([0, 1, 0, 1, 0, 1]), torch.full((6, 2), 0.01))
    assert torch.allclose((per_scene.center - p.center)[:, :, 0], torch.tensor([[.01, 0], [0, .01]] * 3))


def test_sub_pixel_moves_change_the_image_a_little():
    p = two_apart_objects()
    base = render_rooms(p, 64).images
    diffs = [(render_rooms(p.moved(0, (d / 64, 0)), 64).images - base).abs().sum().item() for d in (0.1, 0.2, 0.4)]
    assert 0 < diffs[0] < diffs[1] < diffs[2]


def test_later_objects_hide_earlier_ones():
    p = two_apart_objects()
    p = dataclasses.replace(p, center=torch.full_like(p.center, 0.5))  # same place: slot 1 on top
    batch = render_rooms(p, 64)
    total = batch.masks.sum(1)
    assert total.max() <= 1 + 1e-5  # visible masks never overlap
    assert (batch.masks[:, 0].sum((1, 2)) < render_rooms(dataclasses.replace(
        p, present=torch.tensor([[True, False]] * 6)), 64).masks[:, 0].sum((1, 2))).all()


def test_figure_mask_covers_the_keypoints_and_poses_differ():
    p = sample_figures(12, gen(7))
    batch = render_figures(p, 128)
    kp = batch.keypoints
    inside = ((kp > 0.01) & (kp < 0.99)).all(-1)
    idx = (kp * 128).long().clamp(0, 127)
    on_mask = batch.masks[torch.arange(12)[:, None], 0, idx[..., 1], idx[..., 0]]
    assert inside.float().mean() > 0.8 and (on_mask[inside] > 0.5).all()
    assert torch.equal(batch.centers[:, 0], p.root) and (batch.kinds == 0).all()
    other_pose = render_figures(dataclasses.replace(p, angles=sample_figures(12, gen(8)).angles), 128)
    changed = (other_pose.masks - batch.masks).abs().sum((1, 2, 3))
    assert (changed > 20).all()


@pytest.mark.parametrize("kind", ["rooms", "figures"])
def test_clip_frames_are_the_frames_rendered_alone(kind):
    p = sample_clip_params(kind, 3, generator=gen(2))
    render = render_rooms if kind == "rooms" else render_figures
    times = torch.tensor([[0.0, 0.7, 2.5], [0.0, 1.1, 1.2], [0.0, 3.0, 3.9]])
    clip = render_clip_frames(kind, p, times, 32)
    assert clip.images.shape == (3, 3, 3, 32, 32) and clip.masks.shape[:2] == (3, 3)
    for f in range(3):
        alone = render(p, 32, t=times[:, f])
        assert torch.allclose(clip.images[:, f], alone.images, atol=1e-6)
        assert torch.allclose(clip.centers[:, f], alone.centers, atol=1e-6)
    # t = 0 of a clip is the still scene: motion starts from the sampled pose.
    still = sample_rooms(3, generator=gen(2)) if kind == "rooms" else sample_figures(3, generator=gen(2))
    assert torch.allclose(clip.images[:, 0], render(still, 32, t=0.0).images, atol=1e-6)


@pytest.mark.parametrize("kind", ["rooms", "figures"])
def test_motion_is_smooth_in_time(kind):
    p = sample_clip_params(kind, 8, generator=gen(3))
    starts = torch.linspace(0.2, 3.0, 8)
    frames = render_clip_frames(kind, p, torch.stack([starts, starts + 1 / 60, starts + 1 / 5, starts + 1], 1), 32)
    step = lambda dt: (frames.images[:, dt] - frames.images[:, 0]).abs().mean().item()
    assert 0 < step(1) < 0.25 * step(2) and step(1) < 0.25 * step(3)
    assert (frames.centers[:, 1] - frames.centers[:, 0]).abs().max() < 0.01


def test_room_motion_moves_objects_and_the_light():
    p = add_room_motion(sample_rooms(4, generator=gen(1)), gen(1))
    a, b = render_rooms(p, 32, t=0.0), render_rooms(p, 32, t=1.5)
    assert not torch.allclose(a.centers, b.centers) and not torch.allclose(a.images, b.images)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["rooms", "figures"])
def test_cuda_renders_the_same_scenes_as_the_cpu(name):
    cpu = make_dataset(name, 64, "cpu").sample(4, gen(0))
    gpu = make_dataset(name, 64, "cuda").sample(4, gen(0))
    assert gpu.images.is_cuda
    assert (gpu.images.cpu() - cpu.images).abs().max() < 1e-3
    assert (gpu.masks.cpu() - cpu.masks).abs().max() < 1e-3


def test_the_skeleton_layout_prior_is_what_the_figures_data_has():
    """models.config.SKELETON_OFFSETS* were measured on the figures data; measure again."""
    from models.config import SKELETON_OFFSETS1, SKELETON_OFFSETS2
    from models.data.figures import sample_figures, skeleton, skeleton_hierarchy

    p = sample_figures(20000, torch.Generator().manual_seed(0))
    _, off1, off2 = skeleton_hierarchy(skeleton(p.root, p.scale, p.angles))
    for measured, table in ((off1, SKELETON_OFFSETS1), (off2, SKELETON_OFFSETS2)):
        stats = torch.tensor(table)  # [n, (mean, std), (x, y)]
        assert torch.allclose(measured.mean(0), stats[:, 0], atol=2e-3)
        assert torch.allclose(measured.std(0), stats[:, 1], atol=2e-3)


@pytest.mark.parametrize("name", ["rooms", "figures", "clips-rooms", "clips-figures"])
def test_a_layout_drawn_without_pixels_is_the_rendered_batchs(name):
    """Dataset.sample_layout (what a layout-conditional trainer gives G) draws the same
    scenes as Dataset.sample and leaves the random stream where sample leaves it."""
    data = make_dataset(name, 32)
    g_render, g_layout = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    rendered, layout = data.sample(6, g_render), data.sample_layout(6, g_layout)
    assert torch.equal(rendered.centers, layout.centers) and torch.equal(rendered.present, layout.present)
    assert (rendered.keypoints is None) == (layout.keypoints is None) == (not name.endswith("figures"))
    if rendered.keypoints is not None:
        assert torch.equal(rendered.keypoints, layout.keypoints)
    assert torch.equal(torch.rand(4, generator=g_render), torch.rand(4, generator=g_layout))
