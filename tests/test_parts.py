"""The figures' part map (data.figures.render_figures), where the hierarchy fixes each part
(data.figure_parts), G's part loss and its judge (TrainConfig.limb_parts)."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from models.config import ConfigError
from models.data.figure_parts import RULES, part_regions
from models.data.figures import ARM, HEAD, LEG, PARTS, TORSO, render_figures, sample_figures, skeleton_hierarchy
from models.io.backbone_file import BackboneError, load_backbone, save_backbone
from models.nets.heatmaps import bone_geometry
from models.nets.projected import FeatureBackbone
from models.training.configs import TRAINING_CONFIGS, TrainConfig
from models.training.losses import LIMB_PIXELS
from models.training.parts import part_segment_loss
from models.training.train_backbone import train_backbone
from models.training.trainer import Trainer
from tests.conftest import two_steps_train_g_with_the_limb_judge_frozen

TINY_PARTS = dataclasses.replace(TRAINING_CONFIGS["tiny-figures-layout"], name="tiny-figures-parts", limb_segment=1.0,
                                 limb_parts=True)


@pytest.fixture(scope="module")
def figures():
    return render_figures(sample_figures(256, torch.Generator().manual_seed(3)), 64)


def test_the_part_map_is_the_mask_split_into_parts(figures):
    parts = figures.parts
    assert parts is not None and parts.shape == (256, 64, 64) and parts.dtype == torch.long
    assert set(parts.unique().tolist()) == {0, HEAD, TORSO, ARM, LEG}
    # a pixel given a part is the figure's; the figure's pixels are given a part but where two
    # half-covering edges meet (1.6 % of them, measured)
    figure = figures.masks[:, 0] > 0.5
    assert not bool((parts > 0)[~figure].any())
    assert float((parts > 0)[figure].float().mean()) > 0.95
    # a figure with its arms held down the sides: the head is above the torso, the legs below
    one = render_figures(dataclasses.replace(sample_figures(1, torch.Generator().manual_seed(0)),
                                             root=torch.tensor([[0.5, 0.5]]), scale=torch.tensor([0.25]),
                                             angles=torch.zeros(1, 10)), 64).parts[0]
    rows = {part: torch.nonzero(one == part)[:, 0].float().mean() for part in (HEAD, TORSO, LEG)}
    assert rows[HEAD] < rows[TORSO] < rows[LEG]


def test_the_hierarchy_fixes_each_part_where_the_renderer_draws_it(figures):
    regions, parts = part_regions(*skeleton_hierarchy(figures.keypoints), 64)
    assert regions.shape == (256, len(RULES) + 1, 64, 64) and len(parts) == len(RULES) + 1
    assert set(parts) == {HEAD, TORSO, ARM, LEG}
    for i, part in enumerate(parts):
        on = regions[:, i]
        agree = float((figures.parts[on] == part).float().mean())
        # measured on 512 skeletons: 0.68 (the torso under the arms) to 1.00 (the head's disc)
        assert agree > 0.6, (i, PARTS[part - 1], agree)
    # every region is some of the figure (not background) far more often than chance (7 %)
    assert float((figures.parts[regions.any(dim=1)] > 0).float().mean()) > 0.9


def _verdict(parts: torch.Tensor, sure: float = 8.0) -> torch.Tensor:
    """A part segmenter's log-probabilities [B, 5, S, S] that are sure of the given map."""
    logits = torch.full((parts.shape[0], 1 + len(PARTS), *parts.shape[-2:]), -sure)
    logits.scatter_(1, parts[:, None], sure)
    return logits.log_softmax(dim=1)


def test_a_segmenter_that_sees_the_parts_the_hierarchy_asks_for_costs_little_and_swapped_parts_cost_more(figures):
    hierarchy = skeleton_hierarchy(figures.keypoints[:32])
    regions, parts = part_regions(*hierarchy, 64)
    _, d2 = bone_geometry(*hierarchy, 64)
    # the real figure, some part along every bone, and each region's part over it
    asked = torch.where((d2.sqrt() * 64 < LIMB_PIXELS).any(dim=1) & (figures.parts[:32] == 0), LEG,
                        figures.parts[:32])
    for i, part in enumerate(parts):
        asked = torch.where(regions[:, i], part, asked)
    good = float(part_segment_loss(_verdict(asked), *hierarchy))
    swapped = asked.clone()
    swapped[asked == HEAD], swapped[asked == TORSO] = TORSO, HEAD  # a torso for a head, and back
    bad = float(part_segment_loss(_verdict(swapped), *hierarchy))
    real = float(part_segment_loss(_verdict(figures.parts[:32]), *hierarchy))
    # good pays only where two regions overlap (a hand at the hip) and for the real figure's
    # pixels far from every bone (a foot, a hand beyond the wrist)
    assert good < 0.5 and bad > good + 1 and real < bad, (good, bad, real)


def test_the_part_loss_reaches_the_head_pixels():
    hierarchy = skeleton_hierarchy(render_figures(sample_figures(2, torch.Generator().manual_seed(1)), 32).keypoints)
    log_probs = torch.zeros(2, 1 + len(PARTS), 32, 32).log_softmax(dim=1).requires_grad_(True)
    part_segment_loss(log_probs, *hierarchy).backward()
    regions, parts = part_regions(*hierarchy, 32)
    head = regions[:, parts.index(HEAD)]
    assert log_probs.grad is not None and bool(head.any())
    assert float(log_probs.grad[:, HEAD][head].mean()) < 0  # raising the head there lowers the loss


def test_a_segmenter_of_other_classes_is_refused_by_the_loss():
    with pytest.raises(ValueError, match="5 classes"):
        part_segment_loss(torch.zeros(1, 2, 8, 8), torch.full((1, 2), 0.5), torch.zeros(1, 2, 2), torch.zeros(1, 4, 2))


def test_limb_parts_needs_limb_segment():
    with pytest.raises(ConfigError, match="limb_parts"):
        TrainConfig.from_dict({**TINY_PARTS.to_dict(), "limb_segment": 0.0})


def test_a_missing_or_foreign_part_segmenter_is_one_error_naming_it(tmp_path, monkeypatch):
    missing = tmp_path / "parts_backbone.safetensors"
    monkeypatch.setenv("STEERGAN_PARTS_BACKBONE", str(missing))
    with pytest.raises(BackboneError, match="train_backbone --parts") as info:
        Trainer(TINY_PARTS, tmp_path / "run", device="cpu")
    assert str(missing) in str(info.value)
    save_backbone(missing, FeatureBackbone(["background", "figure"]), {"steps": 0})
    with pytest.raises(BackboneError, match="head") as info:
        Trainer(TINY_PARTS, tmp_path / "run", device="cpu")
    assert str(missing) in str(info.value)


def test_a_part_segmenter_trains_and_the_part_loss_trains_g_with_the_segmenter_frozen(tmp_path, monkeypatch):
    net, info = train_backbone(steps=3, batch=4, parts=True, log=lambda _: None)
    assert net.classes == ["background", *PARTS] and info["parts"] and info["steps"] == 3
    path = tmp_path / "parts.safetensors"
    save_backbone(path, net, info)
    assert load_backbone(path)[0].classes == ["background", *PARTS]
    monkeypatch.setenv("STEERGAN_PARTS_BACKBONE", str(path))
    two_steps_train_g_with_the_limb_judge_frozen(Trainer(TINY_PARTS, tmp_path / "run", device="cpu"))
