"""The metrics of what a user sees (issue 14): tracked co-move, block locality in pixels, the
realism classifier. Each test has a case the metric must score high and one it must score low."""
import dataclasses
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from models.data.rooms import render_rooms, sample_rooms
from models.document.scene import DEFAULT_OBJECT_SIGMA
from models.metrics.realism import blur, classifier_accuracy
from models.metrics.steering import block_change_levels, block_report, style_swap_locality
from models.metrics.tracked import track_moves, tracked_co_move, tracked_co_move_ceiling
from models.nets.generator import Latents

# ---- a generator-shaped stand-in drawn by the procedural renderer ------------------------

OBJECT_FIELDS = ("kind", "half_size", "rotation", "colour_a", "colour_b", "colour_c", "sky", "pattern",
                 "pattern_freq", "pattern_angle", "pattern_phase", "round_shape", "jitter")


def _seed(*tensors: torch.Tensor) -> int:
    return int(sum(float((t.double() * 1e4).round().abs().sum()) for t in tensors)) % (2 ** 31)


class RendererGenerator(torch.nn.Module):
    """Latents -> procedural rooms: z_global draws the room, z_objects[j] object j's look,
    centers place the objects. The ideal generator for tracked co-move; its variants are
    the failures a user sees: `restyle_on_move` (an object's look depends on where it is)
    and `redraw_room_on_move` (the room depends on where the objects are)."""

    def __init__(self, size: int = 64, objects: int = 3, restyle_on_move: bool = False,
                 redraw_room_on_move: bool = False, ignore_heatmaps: bool = False):
        super().__init__()
        self.config = SimpleNamespace(resolution=size, objects=objects, z_dim=4, grid=0, hierarchical=False,
                                      mtm=(), time=None)
        self.register_buffer("const", torch.zeros(1))
        self.restyle_on_move, self.redraw_room_on_move = restyle_on_move, redraw_room_on_move
        self.ignore_heatmaps = ignore_heatmaps

    def sample_latents(self, batch, generator=None, device="cpu"):
        n, z = self.config.objects, self.config.z_dim
        return Latents(z_global=torch.randn(batch, z, generator=generator),
                       z_objects=torch.randn(batch, n, z, generator=generator),
                       centers=0.15 + 0.7 * torch.rand(batch, n, 2, generator=generator),
                       sigmas=torch.full((batch, n), DEFAULT_OBJECT_SIGMA)).to(device)

    def _scene(self, lat: Latents, b: int):
        n = self.config.objects
        centers = torch.full_like(lat.centers[b], 0.5) if self.ignore_heatmaps else lat.centers[b]
        room = sample_rooms(1, n, torch.Generator().manual_seed(
            _seed(lat.z_global[b], *([centers] if self.redraw_room_on_move else []))))
        looks = [sample_rooms(1, n, torch.Generator().manual_seed(
            _seed(lat.z_objects[b, j], *([centers[j]] if self.restyle_on_move else [])))) for j in range(n)]
        fields = {name: torch.stack([getattr(looks[j], name)[:, j] for j in range(n)], 1) for name in OBJECT_FIELDS}
        return replace(room, **fields, center=centers[None].float(), present=lat.sigmas[b:b + 1] > 0)

    def forward(self, lat: Latents, **_):
        scenes = [self._scene(lat, b) for b in range(lat.batch)]
        params = type(scenes[0])(**{f.name: torch.cat([getattr(s, f.name) for s in scenes])
                                    for f in dataclasses.fields(scenes[0])})
        return render_rooms(params, self.config.resolution).images


# ---- tracked co-move -------------------------------------------------------------------

def _textured_square_scene(center, size=64, background=0.2, tint=(0.9, 0.3, 0.2)):
    """One image: a flat background and a checkered square (side 0.16) at center."""
    coords = (torch.arange(size) + 0.5) / size
    x, y = coords.view(1, -1), coords.view(-1, 1)
    inside = ((x - center[0]).abs() <= 0.08) & ((y - center[1]).abs() <= 0.08)
    checks = ((torch.floor(x * 32) + torch.floor(y * 32)) % 2) * 0.4 + 0.6
    img = torch.full((3, size, size), background)
    for c, t in enumerate(tint):
        img[c] = torch.where(inside, t * checks, img[c])
    return img * 2 - 1


def test_track_moves_on_known_pairs():
    start, delta = torch.tensor([0.35, 0.4]), torch.tensor([0.18, 0.05])
    before = _textured_square_scene(start)[None]
    moved = _textured_square_scene(start + delta)[None]
    c, d = start[None], delta[None]
    ok = track_moves(before, moved, c, d)
    assert ok.found.item() and ok.success.item()
    assert ok.found_shift[0].tolist() == pytest.approx(delta.tolist(), abs=1.5 / 64)
    assert track_moves(before, before, c, d).found.item() is False  # nothing moved
    restyled = _textured_square_scene(start + delta, tint=(0.2, 0.4, 0.9))[None]
    assert track_moves(before, restyled, c, d).found.item() is False  # another object arrived
    redrawn = _textured_square_scene(start + delta, background=0.7)[None]
    gone = track_moves(before, redrawn, c, d)
    assert gone.outside_levels.item() > 100 and gone.success.item() is False  # the room changed
    half = _textured_square_scene(start + delta / 2)[None]
    assert track_moves(before, half, c, d).found.item() is False  # moved only half way


def test_renderer_ceiling_is_high_and_ideal_generator_reaches_it():
    ceiling = tracked_co_move_ceiling(64, 32, seed=0)
    assert ceiling["tracked"] >= 0.55
    assert ceiling["outside_levels"] < 3
    ideal = tracked_co_move(RendererGenerator(), 16, seed=0)
    assert ideal["tracked"] >= 0.45


@pytest.mark.parametrize("failure", ["ignore_heatmaps", "restyle_on_move", "redraw_room_on_move"])
def test_generators_that_do_not_move_the_same_object_score_low(failure):
    score = tracked_co_move(RendererGenerator(**{failure: True}), 16, seed=0)
    assert score["tracked"] <= 0.1, score
    if failure == "redraw_room_on_move":
        assert score["outside_levels"] > 15


class FigureRendererGenerator(torch.nn.Module):
    """Latents -> procedural figures: z_global draws the figure's look and pose, the root
    places it (a hierarchical generator's level-0 center). Failures: `ignore_root` (the
    figure stays put) and `restyle_on_move` (its look depends on where it is)."""

    def __init__(self, size: int = 64, ignore_root: bool = False, restyle_on_move: bool = False):
        super().__init__()
        self.config = SimpleNamespace(resolution=size, objects=0, z_dim=4, grid=0, hierarchical=True,
                                      mtm=(), time=None)
        self.register_buffer("const", torch.zeros(1))
        self.ignore_root, self.restyle_on_move = ignore_root, restyle_on_move

    def sample_latents(self, batch, generator=None, device="cpu"):
        return Latents(z_global=torch.randn(batch, self.config.z_dim, generator=generator),
                       root=0.3 + 0.4 * torch.rand(batch, 2, generator=generator))

    def forward(self, lat: Latents, **_):
        from models.data.figures import render_figures, sample_figures

        images = []
        for b in range(lat.batch):
            root = torch.full((2,), 0.5) if self.ignore_root else lat.root[b]
            look = sample_figures(1, torch.Generator().manual_seed(
                _seed(lat.z_global[b], *([root] if self.restyle_on_move else []))))
            images.append(render_figures(replace(look, root=root[None].float()), self.config.resolution).images)
        return torch.cat(images)


def test_tracked_co_move_of_a_figure():
    """Hierarchical generators: the root is moved. The figures renderer's ceiling is high, a
    generator that is the renderer reaches it, and the failures score low."""
    ceiling = tracked_co_move_ceiling(64, 32, seed=0, figures=True)
    assert ceiling["tracked"] >= 0.8 and ceiling["outside_levels"] < 3
    assert tracked_co_move(FigureRendererGenerator(), 16, seed=0)["tracked"] >= 0.7
    for failure in ("ignore_root", "restyle_on_move"):
        score = tracked_co_move(FigureRendererGenerator(**{failure: True}), 16, seed=0)
        assert score["tracked"] <= 0.2, (failure, score)


# ---- block and style locality: the direction matters -------------------------------------

class BlockPainter(torch.nn.Module):
    """Each grid block is a flat colour from its own z; `leak` also tints the whole image by
    the sum of all block codes, so resampling any block changes everything."""

    def __init__(self, size=32, grid=4, leak=0.0):
        super().__init__()
        self.config = SimpleNamespace(resolution=size, objects=0, z_dim=3, grid=grid, hierarchical=False)
        self.register_buffer("const", torch.zeros(1))
        self.leak = leak

    def sample_latents(self, batch, generator=None, device="cpu"):
        g, z = self.config.grid, self.config.z_dim
        return Latents(z_global=torch.randn(batch, z, generator=generator),
                       z_blocks=torch.randn(batch, g * g, z, generator=generator))

    def forward(self, lat, **_):
        g, s = self.config.grid, self.config.resolution
        colours = torch.tanh(lat.z_blocks).transpose(1, 2).reshape(-1, 3, g, g) * 0.5
        img = F.interpolate(colours, size=(s, s), mode="nearest")
        return (img + self.leak * torch.tanh(lat.z_blocks.sum(dim=1))[:, :, None, None]).clamp(-1, 1)


def test_block_locality_prefers_change_inside_the_block():
    local = block_report(BlockPainter(), 16, torch.Generator().manual_seed(0))
    leaky = block_report(BlockPainter(leak=0.8), 16, torch.Generator().manual_seed(0))
    assert local["outside_levels"] == 0 and local["inside_levels"] > 10
    assert local["locality_levels"] > 1000 and local["locality"] > 1000
    assert leaky["locality_levels"] < 5 and leaky["locality"] < 5
    assert leaky["outside_levels"] > 1


def test_block_change_levels_is_not_symmetric():
    """Change only inside the block, then only outside it: swapping inside and outside in the
    metric would swap these answers."""
    before = torch.zeros(1, 3, 32, 32)
    block = torch.tensor([5])  # row 1, column 1 of a 4x4 grid: pixels 8..15
    inside_only = before.clone()
    inside_only[..., 8:16, 8:16] = 0.5
    mean_in, mean_out = block_change_levels(before, inside_only, block, 4)
    assert mean_in.item() == pytest.approx(64, abs=1) and mean_out.item() == 0
    outside_only = before.clone()
    outside_only[..., 24:, 24:] = 0.5  # beyond half a block (4 px) from the block
    mean_in, mean_out = block_change_levels(before, outside_only, block, 4)
    assert mean_in.item() == 0 and mean_out.item() > 5
    margin_only = before.clone()
    margin_only[..., 16:20, 8:16] = 0.5  # within half a block of it: neither inside nor outside
    mean_in, mean_out = block_change_levels(before, margin_only, block, 4)
    assert mean_in.item() == 0 and mean_out.item() == 0


class ObjectPainter(torch.nn.Module):
    """Discs at the heatmap centers coloured by their z; `leak` tints the background by the
    mean of the object codes, so a style swap changes everything."""

    def __init__(self, size=32, objects=2, leak=0.0):
        super().__init__()
        self.config = SimpleNamespace(resolution=size, objects=objects, z_dim=3, grid=0, hierarchical=False)
        self.register_buffer("const", torch.zeros(1))
        self.leak = leak

    def sample_latents(self, batch, generator=None, device="cpu"):
        n, z = self.config.objects, self.config.z_dim
        return Latents(z_global=torch.randn(batch, z, generator=generator),
                       z_objects=torch.randn(batch, n, z, generator=generator),
                       centers=torch.rand(batch, n, 2, generator=generator),
                       sigmas=torch.full((batch, n), DEFAULT_OBJECT_SIGMA))

    def object_heatmaps(self, lat, size):
        from models.nets.heatmaps import gaussian_heatmaps

        return gaussian_heatmaps(lat.centers, lat.sigmas, size)

    def forward(self, lat, **_):
        s = self.config.resolution
        discs = (self.object_heatmaps(lat, s) > 0.5).float()  # [B, n, S, S], inside the region
        img = self.leak * torch.tanh(lat.z_objects.mean(dim=1))[:, :, None, None].expand(-1, -1, s, s)
        for j in range(self.config.objects):
            img = torch.where(discs[:, j:j + 1] > 0, torch.tanh(lat.z_objects[:, j])[:, :, None, None], img)
        return img


def test_style_swap_locality_prefers_change_on_the_object():
    local = style_swap_locality(ObjectPainter(), 16, torch.Generator().manual_seed(0))
    leaky = style_swap_locality(ObjectPainter(leak=0.8), 16, torch.Generator().manual_seed(0))
    assert local > 20 and leaky < 3


# ---- realism classifier --------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_rooms():
    rng = torch.Generator().manual_seed(0)
    return render_rooms(sample_rooms(128, 3, rng), 32).images, render_rooms(sample_rooms(128, 3, rng), 32).images


def test_realism_classifier_real_against_real_is_chance(real_rooms):
    a, b = real_rooms
    assert classifier_accuracy(a, b) == pytest.approx(0.5, abs=0.12)


@pytest.mark.parametrize("spoil", ["blur", "low_contrast"])
def test_realism_classifier_tells_spoiled_real_images(real_rooms, spoil):
    a, b = real_rooms
    spoiled = blur(b, 1.5) if spoil == "blur" else b * 0.5
    assert classifier_accuracy(a, spoiled) >= 0.75


def test_realism_classifier_rejects_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        classifier_accuracy(torch.zeros(8, 3, 16, 16), torch.zeros(10, 3, 16, 16))
    with pytest.raises(ValueError, match="at least 8"):
        classifier_accuracy(torch.zeros(4, 3, 16, 16), torch.zeros(4, 3, 16, 16))


def test_eval_reports_the_new_metrics_and_their_references(tiny_generators):
    from models.metrics.evaluate import KEYS, REFERENCE_KEYS, evaluate

    class FlatProbe(torch.nn.Module):  # features only matter for the FD
        classes = ["background", "a", "figure"]

        def forward(self, images):
            return torch.zeros(len(images), 3, 8, 8), images.mean(dim=(2, 3))

    metrics = evaluate(tiny_generators["tiny-rooms"], FlatProbe(), samples=4, fd_samples=8, realism_samples=8)
    for key in ("co_move_tracked", "co_move_outside_levels", "block_locality_levels", "block_outside_levels",
                "realism_accuracy", "co_move_tracked_ceiling", "realism_accuracy_real_floor", "colour_spread",
                "colour_spread_real", "kind_accuracy", "kind_accuracy_real"):
        assert metrics[key] is not None, key
    assert set(KEYS) | set(REFERENCE_KEYS) <= set(metrics)
    assert 0 <= metrics["kind_accuracy"] <= 1 and 0 <= metrics["kind_accuracy_real"] <= 1
    assert 0 <= metrics["realism_accuracy"] <= 1 and metrics["realism_samples"] == 8
    assert "realism_accuracy_each" not in metrics

    # realism_seeds: the mean of that many classifier tests, the first the single test's own
    several = evaluate(tiny_generators["tiny-rooms"], FlatProbe(), samples=4, fd_samples=8, realism_samples=8,
                       realism_seeds=3)
    each = several["realism_accuracy_each"]
    assert len(each) == 3 and each[0] == metrics["realism_accuracy"] and all(0 <= a <= 1 for a in each)
    assert several["realism_accuracy"] == pytest.approx(sum(each) / 3)
    assert {k: v for k, v in several.items() if not k.startswith("realism_accuracy")} == \
        {k: v for k, v in metrics.items() if not k.startswith("realism_accuracy")}  # nothing else moves
    with pytest.raises(ValueError, match="realism_seeds must be at least 1, got 0"):
        evaluate(tiny_generators["tiny-rooms"], FlatProbe(), samples=4, realism_seeds=0)


def test_colour_spread_tells_one_wall_colour_from_many(real_rooms):
    """Real rooms vary in colour; the same rooms with every pixel's colour replaced by the
    batch's mean colour at that place (what a generator whose walls all drift to one grey
    draws) keep their layout but lose the spread."""
    from models.metrics.colour import colour_spread

    a, _ = real_rooms
    real = colour_spread(a)
    assert 0.1 < real < 0.5
    one_colour = a.mean(dim=0, keepdim=True).expand_as(a) + 0.05 * (a - a.mean(dim=0, keepdim=True))
    assert colour_spread(one_colour) < 0.1 * real
    assert colour_spread(a * 0.5) == pytest.approx(0.5 * real, rel=1e-4)  # linear in contrast
    with pytest.raises(ValueError, match="N >= 2"):
        colour_spread(a[:1])


# ---- training for it: the move-consistency term ---------------------------------------------

def test_move_consistency_loss_prefers_the_same_object_and_the_same_room():
    from models.training.losses import move_consistency_loss

    def loss(G):
        lat = G.sample_latents(8, torch.Generator().manual_seed(3))
        return float(move_consistency_loss(G, lat, G(lat), generator_rng=torch.Generator().manual_seed(4)))

    ideal = loss(RendererGenerator(size=32))
    assert ideal < 0.5 * loss(RendererGenerator(size=32, restyle_on_move=True))
    assert ideal < 0.5 * loss(RendererGenerator(size=32, redraw_room_on_move=True))


def test_move_consistency_option_trains_and_is_checked():
    from models.config import ConfigError
    from models.training.configs import TRAINING_CONFIGS, TrainConfig
    from models.training.trainer import Trainer

    cfg = replace(TRAINING_CONFIGS["tiny-rooms-layout"], move_weight=1.0, move_every=1)
    trainer = Trainer(cfg, "unused-run-folder", device="cpu")
    stats = trainer.train_step()
    assert stats["move"] > 0 and all(torch.isfinite(p).all() for p in trainer.G.parameters())
    assert "move" not in Trainer(TRAINING_CONFIGS["tiny-rooms-layout"], "unused", device="cpu").train_step()
    with pytest.raises(ConfigError, match="move_weight must be"):
        replace(TRAINING_CONFIGS["tiny-rooms"], move_weight=-1.0)
    with pytest.raises(ConfigError, match="objects or hierarchical"):
        TrainConfig("x", "tiny-plain", "rooms", move_weight=1.0)
    TrainConfig("x", "tiny-clips", "clips-rooms", move_weight=1.0)  # clips too, since session 23
