"""Metrics on cases whose answer is known."""
from dataclasses import replace

import pytest
import torch

from models.io.library import untrained_generator
from models.metrics.fd import frechet_distance
from models.metrics.probe import DEFAULT_PROBE
from models.metrics.steering import block_metrics, co_move_ratio, co_move_scores, style_swap_locality


def test_frechet_distance_known_values():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4000, 3, generator=g)
    b = torch.randn(4000, 3, generator=g)
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    assert frechet_distance(a, b) < 0.02
    # shifted mean: FD = |dmu|^2; scaled by 2: |mu|^2 + tr(S + 4S - 2*2S) = |mu|^2 + tr(S)
    assert frechet_distance(a, a + torch.tensor([1.0, 2.0, 0.0])) == pytest.approx(5.0, rel=1e-6)
    expect = float(a.double().mean(0).square().sum() + torch.cov(a.double().T).trace())
    assert frechet_distance(a, 2 * a) == pytest.approx(expect, rel=1e-6)


def _disc_probs(centers, size=64, radius=0.1, classes=3, cls=1):
    coords = (torch.arange(size) + 0.5) / size
    d2 = (coords.view(1, 1, -1) - centers[:, 0].view(-1, 1, 1)) ** 2 + \
         (coords.view(1, -1, 1) - centers[:, 1].view(-1, 1, 1)) ** 2
    obj = (d2 <= radius ** 2).float()
    probs = torch.zeros(len(centers), classes, size, size)
    probs[:, 0] = 1 - obj
    probs[:, cls] = obj
    return probs


def test_co_move_scores_full_partial_and_none():
    c = torch.tensor([[0.3, 0.4], [0.5, 0.5]])
    p = torch.tensor([[0.2, 0.0], [0.0, -0.15]])
    before = _disc_probs(c)
    full = co_move_scores(before, _disc_probs(c + p), c, p, torch.full((2,), 0.2))
    assert full.tolist() == pytest.approx([1.0, 1.0], abs=0.05)
    half = co_move_scores(before, _disc_probs(c + p / 2), c, p, torch.full((2,), 0.2))
    assert half.tolist() == pytest.approx([0.5, 0.5], abs=0.05)
    still = co_move_scores(before, before, c, p, torch.full((2,), 0.2))
    assert still.tolist() == [0.0, 0.0]
    # an object of another class appearing in the window does not count
    other = _disc_probs(c + p, cls=2)
    mixed = torch.maximum(before, other)
    mixed[:, 0] = 1 - mixed[:, 1:].sum(1)
    assert co_move_scores(before, mixed, c, p, torch.full((2,), 0.2)).tolist() == [0.0, 0.0]


class IgnoresHeatmaps(torch.nn.Module):
    """A generator that draws the same image wherever its heatmap centers are."""

    def __init__(self, G):
        super().__init__()
        self.G = G
        self.config = G.config
        self.const = G.const

    def sample_latents(self, *a, **k):
        return self.G.sample_latents(*a, **k)

    def object_heatmaps(self, lat, size):
        return self.G.object_heatmaps(lat, size)

    def forward(self, lat, **kw):
        lat = replace(lat, centers=torch.full_like(lat.centers, 0.5)) if lat.centers is not None else lat
        lat = replace(lat, root=torch.full_like(lat.root, 0.5)) if lat.root is not None else lat
        return self.G(lat, **kw)


class RandomProbe(torch.nn.Module):
    classes = ["background", "a", "b", "figure"]

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, images):
        return self.conv(images) * 5, images.mean(dim=(2, 3))


@pytest.mark.parametrize("arch", ["tiny-rooms", "tiny-figures"])
def test_a_model_that_ignores_its_heatmap_scores_zero(arch):
    G = IgnoresHeatmaps(untrained_generator(arch))
    score = co_move_ratio(G, RandomProbe(), samples=8, rng=torch.Generator().manual_seed(0))
    assert score == 0.0


def test_block_and_style_metrics_on_untrained_tiny_model():
    G = untrained_generator("tiny-rooms")
    out, locality = block_metrics(G, 8, torch.Generator().manual_seed(0))
    assert out > 0 and locality > 0
    assert style_swap_locality(G, 8, torch.Generator().manual_seed(0)) > 0


def test_renderer_ground_truth_co_moves():
    """Move an object in the procedural renderer itself: its co-move ratio is close to 1
    (ground-truth masks as the probe)."""
    from models.data.rooms import render_rooms, sample_rooms

    rng = torch.Generator().manual_seed(0)
    params = sample_rooms(16, n_objects=1, generator=rng)
    delta = torch.tensor([0.12, -0.08]).expand(16, 2).clone()
    before, after = render_rooms(params, 64), render_rooms(params.moved(0, delta), 64)
    probs = lambda b: torch.stack([1 - b.masks[:, 0], b.masks[:, 0]], 1)  # ground truth masks
    radius = torch.full((16,), 0.15)
    scores = co_move_scores(probs(before), probs(after), before.centers[:, 0], delta, radius,
                            classes=torch.ones(16, dtype=torch.long))
    assert float(scores.mean()) == pytest.approx(1.0, abs=0.05)


@pytest.mark.skipif(not DEFAULT_PROBE.exists(), reason="the shipped probe is missing")
def test_renderer_co_moves_through_the_shipped_probe():
    """The same sanity check through the shipped segmenter: what `steergan eval` uses."""
    from models.data.rooms import render_rooms, sample_rooms
    from models.metrics.probe import load_probe

    probe, _ = load_probe(DEFAULT_PROBE)
    rng = torch.Generator().manual_seed(5)
    params = sample_rooms(32, n_objects=3, generator=rng)
    which = torch.randint(3, (32,), generator=rng)
    angle = torch.rand(32, generator=rng) * 6.283
    delta = 0.15 * torch.stack([angle.cos(), angle.sin()], 1)
    b0, b1 = render_rooms(params, 64), render_rooms(params.moved(which, delta), 64)
    idx = torch.arange(32)
    with torch.no_grad():
        p0, p1 = probe(b0.images)[0].softmax(1), probe(b1.images)[0].softmax(1)
    scores = co_move_scores(p0, p1, b0.centers[idx, which], delta, torch.full((32,), 0.15))
    present = b0.present[idx, which]
    assert float(scores[present].mean()) > 0.8
