"""G's limbs checked pixel by pixel by a frozen segmenter (TrainConfig.limb_segment,
losses.limb_segment_loss, heatmaps.bone_distances)."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from models.config import ConfigError
from models.io.backbone_file import BackboneError, save_backbone
from models.nets.heatmaps import BONE_MIN_PIXELS, BONE_WIDTH, bone_distances, bone_heatmaps
from models.nets.projected import FeatureBackbone
from models.training.configs import TRAINING_CONFIGS, TrainConfig
from models.training.losses import CLEAR_PIXELS, LIMB_PIXELS, limb_segment_loss
from models.training.trainer import Trainer
from tests.conftest import two_steps_train_g_with_the_limb_judge_frozen

SIZE = 32
TINY_LIMBS = dataclasses.replace(TRAINING_CONFIGS["tiny-figures-layout"], name="tiny-figures-limbs", limb_segment=1.0)


def _skeleton():
    """A vertical skeleton: the root in the middle, the upper body above, the knees below, the
    hands and feet beside them (as tests/test_bones.py draws it)."""
    root = torch.tensor([[0.5, 0.5]])
    offsets1 = torch.tensor([[[0.0, -0.25], [0.0, 0.25]]])
    offsets2 = torch.tensor([[[-0.2, 0.0], [0.2, 0.0], [-0.1, 0.2], [0.1, 0.2]]])
    return root, offsets1, offsets2


def _verdict(bones: torch.Tensor, drop: list[int], sure: float = 8.0) -> torch.Tensor:
    """Log-probabilities of a two-class segmenter [1, 2, S, S] (0 background, 1 figure) that
    sees the figure on every bone except those in `drop` and background elsewhere."""
    near = (bones.sqrt() * SIZE < LIMB_PIXELS)
    kept = [k for k in range(bones.shape[1]) if k not in drop]
    figure = near[:, kept].any(dim=1)
    logits = torch.where(figure, torch.tensor(sure), torch.tensor(-sure))
    return torch.stack([-logits, logits], dim=1).log_softmax(dim=1)


def test_bone_distances_are_zero_on_each_bone_and_grow_away_from_it():
    root, off1, off2 = _skeleton()
    d = bone_distances(root, off1, off2, SIZE)[0]
    assert d.shape == (6, SIZE, SIZE)
    # the spine (bone 0) runs from (0.5, 0.25) to (0.5, 0.5): pixel centres at x = 15.5/32 lie
    # half a pixel off it; the first arm (bone 2) from (0.5, 0.25) to (0.3, 0.25)
    assert float(d[0, 12, 15].sqrt()) * SIZE == pytest.approx(0.5, abs=1e-4)
    assert float(d[2, 7, 11].sqrt()) * SIZE == pytest.approx(0.5, abs=1e-4)
    assert float(d[2, 0, 11].sqrt()) * SIZE == pytest.approx(7.5, abs=1e-4)
    # the Gaussian capsules the generator takes are the same distances
    maps = bone_heatmaps(root, off1, off2, torch.tensor([0.2]), SIZE)
    width = max(0.2 * BONE_WIDTH, BONE_MIN_PIXELS / SIZE)
    assert torch.allclose(maps[0, 0], torch.exp(-d.min(dim=0).values / (2 * width ** 2)))


def test_a_segmenter_that_sees_every_limb_costs_nothing_and_a_missing_arm_costs_its_share():
    root, off1, off2 = _skeleton()
    bones = bone_distances(root, off1, off2, SIZE)
    whole = float(limb_segment_loss(_verdict(bones, []), bones, figure=1))
    assert whole < 1e-3
    no_arm = float(limb_segment_loss(_verdict(bones, [2]), bones, figure=1))
    # each of the 6 bones and the background weigh 1/7: a bone seen as background costs 16/7
    # times the share of its pixels that no other bone covers (an arm shares the shoulder)
    # (a mean over every pixel judged would give the arm's 18 of some 900 pixels: about 0.3)
    assert 16 / 7 * 0.5 < no_arm <= 16 / 7 + 1e-3


def test_the_figure_painted_far_from_the_skeleton_costs_too():
    root, off1, off2 = _skeleton()
    bones = bone_distances(root, off1, off2, SIZE)
    log_probs = _verdict(bones, []).clone()
    clear = (bones.sqrt() * SIZE >= CLEAR_PIXELS).all(dim=1)
    assert clear.any()
    log_probs[:, :, 0, 0] = torch.tensor([-8.0, 0.0])  # a corner called figure
    assert bool(clear[0, 0, 0])
    assert float(limb_segment_loss(log_probs, bones, figure=1)) > 1e-3


def test_the_loss_reaches_the_pixels_of_a_missing_arm():
    root, off1, off2 = _skeleton()
    bones = bone_distances(root, off1, off2, SIZE)
    log_probs = _verdict(bones, [2]).requires_grad_(True)
    limb_segment_loss(log_probs, bones, figure=1).backward()
    assert log_probs.grad is not None
    on_arm = bones[:, 2].sqrt() * SIZE < LIMB_PIXELS
    # raising the figure's log-probability on the missing arm lowers the loss
    assert float(log_probs.grad[:, 1][on_arm].mean()) < 0


@pytest.mark.parametrize("change, problem", [({"limb_segment": -1.0}, "limb_segment must be"),
                                             ({"limb_segment": 1000.0}, "limb_segment must be"),
                                             ({"architecture": "tiny-rooms", "dataset": "rooms",
                                               "limb_segment": 1.0}, "is not hierarchical")])
def test_limb_segment_settings_are_checked(change, problem):
    with pytest.raises(ConfigError, match=problem):
        TrainConfig.from_dict({**TINY_LIMBS.to_dict(), **change})


def _backbone_file(tmp_path, monkeypatch, classes: list[str]):
    torch.manual_seed(5)
    path = tmp_path / "bb.safetensors"
    save_backbone(path, FeatureBackbone(classes), {"steps": 0})
    monkeypatch.setenv("STEERGAN_D_BACKBONE", str(path))
    return path


def test_a_backbone_without_the_figure_class_is_one_error_naming_it(tmp_path, monkeypatch):
    path = _backbone_file(tmp_path, monkeypatch, ["background", "thing"])
    with pytest.raises(BackboneError, match="'figure'") as info:
        Trainer(TINY_LIMBS, tmp_path / "run", device="cpu")
    assert str(path) in str(info.value)


def test_limb_segment_trains_g_and_keeps_the_segmenter_frozen(tmp_path, monkeypatch):
    _backbone_file(tmp_path, monkeypatch, ["background", "figure"])
    two_steps_train_g_with_the_limb_judge_frozen(Trainer(TINY_LIMBS, tmp_path / "run", device="cpu"))
