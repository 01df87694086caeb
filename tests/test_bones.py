"""The skeleton's bones as a generator input (GeneratorConfig.bones_from, heatmaps.bone_heatmaps)."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from models.config import ARCHITECTURES, ConfigError, GeneratorConfig
from models.nets.generator import Generator
from models.nets.heatmaps import bone_heatmaps, hierarchy_centers
from tests.conftest import grow_and_train

TINY_BONES = dataclasses.replace(ARCHITECTURES["tiny-figures"], bones_from=16)


def _straight_skeleton():
    """A vertical skeleton in a 32 px picture: the root at (0.5, 0.5), the upper body above it,
    the knees below, the hands and feet beside them."""
    root = torch.tensor([[0.5, 0.5]])
    offsets1 = torch.tensor([[[0.0, -0.25], [0.0, 0.25]]])
    offsets2 = torch.tensor([[[-0.2, 0.0], [0.2, 0.0], [-0.1, 0.2], [0.1, 0.2]]])
    return root, offsets1, offsets2


def test_bones_lie_on_the_segments_between_centers_and_their_parents():
    root, off1, off2 = _straight_skeleton()
    m = bone_heatmaps(root, off1, off2, torch.tensor([0.2]), 32)[0, 0]
    assert m.shape == (32, 32) and float(m.max()) <= 1.0
    # the spine: x = 0.5 from y = 0.25 to 0.5 (pixel column 15/16, rows 8..16)
    assert float(m[12, 15:17].max()) > 0.6
    # an arm: from the upper body (0.5, 0.25) to a hand (0.3, 0.25), row 7/8
    assert float(m[7:9, 11].max()) > 0.6
    # far from every bone: the top corners and the middle of the empty lower left
    assert float(m[0, 0]) < 1e-3 and float(m[0, 31]) < 1e-3 and float(m[10, 3]) < 1e-3
    # the bones join each center to its parent: both ends of every bone lie on the map
    levels = hierarchy_centers(root, off1, off2)
    # (level, index) of each bone's ends: the spine, the thighs, the arms, the shins
    bones = (((0, 0), (1, 0)), ((0, 0), (1, 1)), ((1, 0), (2, 0)), ((1, 0), (2, 1)), ((1, 1), (2, 2)),
             ((1, 1), (2, 3)))
    for (la, ia), (lb, ib) in bones:
        for x, y in (levels[la][0, ia], levels[lb][0, ib]):
            assert float(m[min(31, int(y * 32)), min(31, int(x * 32))]) > 0.3


def test_a_bone_moves_with_its_hand():
    root, off1, off2 = _straight_skeleton()
    before = bone_heatmaps(root, off1, off2, torch.tensor([0.2]), 32)
    moved = off2.clone()
    moved[0, 0] = torch.tensor([-0.2, -0.15])  # the right hand up
    after = bone_heatmaps(root, off1, moved, torch.tensor([0.2]), 32)
    changed = (after - before).abs()[0, 0]
    assert changed.sum() > 1
    assert float(changed[20:, :].max()) < 1e-4  # the legs stay


def test_a_generator_grown_with_bones_draws_what_it_drew_until_they_learn():
    base = ARCHITECTURES["tiny-figures"]
    torch.manual_seed(0)
    g0, g1 = Generator(base).eval(), Generator(TINY_BONES).eval()
    missing, unexpected = g1.load_state_dict(g0.state_dict(), strict=False)
    assert not unexpected and sorted(missing) == ["bone_bias.16", "bone_bias.32"]
    lat = g0.sample_latents(3, torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(g0(lat, noise_mode="const"), g1(lat, noise_mode="const"))
    g1.train()
    g1(lat, noise_mode="const").square().mean().backward()
    assert g1.bone_bias["32"].grad.abs().sum() > 0  # training opens them


def test_bones_warm_start_from_the_figures_state(tmp_path, monkeypatch):
    from models.training.configs import training_config
    from models.training.gpu_worker import grown_weights

    monkeypatch.setitem(ARCHITECTURES, "tiny-figures-bones", TINY_BONES)
    assert grown_weights("figures-cpu", "figures-cpu-bones") == {"bone_bias.16", "bone_bias.32", "bone_bias.64"}
    bones = grow_and_train(training_config("tiny-figures-layout"), "tiny-figures-bones", tmp_path)
    assert bones.G.bone_bias["32"].abs().sum() > 0


@pytest.mark.parametrize("change, message", [
    ({"bones_from": 4}, "bones_from must be 0"),
    ({"bones_from": 64}, "bones_from must be 0"),
    ({"bones_from": True}, "bones_from must be an integer"),
    ({"hierarchical": False, "layout_prior": "free"}, "bones_from needs hierarchical"),
])
def test_bad_bones_settings_are_named(change, message):
    data = {**TINY_BONES.to_dict(), **change}
    with pytest.raises(ConfigError, match=message):
        GeneratorConfig.from_dict(data)
