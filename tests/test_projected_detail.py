"""Session 18's fifteenth comparison: a D that sees the finest pixels, grown from the relay's
D that saw their 2x2 averages (projected.grow_detail_inputs), so that the arm starts from the
control's trained heads."""
import dataclasses

import pytest
import torch

from models.io.backbone_file import load_backbone
from models.nets.projected import ProjectedDiscriminator, grow_detail_inputs
from models.training.configs import TRAINING_CONFIGS
from models.training.gpu_worker import WarmTrainer
from models.training.state import TrainStateError
from tests.conftest import warm_start_d_as_pixel_d


def _d(backbone, detail: bool, seed: int) -> ProjectedDiscriminator:
    torch.manual_seed(seed)
    return ProjectedDiscriminator(load_backbone(backbone)[0], in_channels=4, augment="none", rgb_heads=True,
                                  mbstd=True, rgb_variety=True, rgb_detail=detail, segment_classes=3).eval()


def test_grown_detail_d_judges_as_the_old_one_did(tiny_backbone):
    """The grown D loads strictly into a D with rgb_detail and scores images nearly as the old
    one did (only spectral norm's sigma of the wider matrix differs); a fresh detail D, or the
    old weights copied without spreading them, do not. Then it sees what the average hid."""
    old = _d(tiny_backbone, False, 1)
    for _ in range(3):  # settle spectral norm's power iteration, as a trained D's is
        old.train()(torch.randn(4, 4, 64, 64))
    old.eval()
    images = torch.rand(8, 4, 64, 64) * 2 - 1
    grown = _d(tiny_backbone, True, 2)
    grown.load_state_dict(grow_detail_inputs(old.state_dict(), grown.detail_factor))
    fresh = _d(tiny_backbone, True, 2)
    with torch.no_grad():
        a, b, c = old.judge(images), grown.judge(images), fresh.judge(images)
        scale = a.logits.std()
        assert (a.logits - b.logits).abs().max() < 0.1 * scale
        assert (a.logits - c.logits).abs().max() > 0.3 * scale
        # the segmenting head's 3x3 weights feel sigma more (3 of 35 channels x 9 taps)
        assert (a.classes - b.classes).abs().mean() < 0.25 * (a.classes - c.classes).abs().mean()
        # 2-px stripes that average to the flat picture: the old D cannot tell them apart
        flat = torch.zeros(2, 4, 64, 64)
        stripes = flat.clone()
        stripes[:, 0, :, 0::2], stripes[:, 0, :, 1::2] = 0.8, -0.8
        fixed = [f.detach() for f in old.project(flat)]
        for D in (old, grown):
            D.project = lambda x, fixed=fixed: fixed  # type: ignore[method-assign]  # features held blind
        assert torch.allclose(old(flat), old(stripes), atol=1e-6)
        # the grown weights are the averages' spread evenly: the stripes' +-0.8 cancel at first
        assert torch.allclose(grown(flat), grown(stripes), atol=1e-4)
    w = grown.heads[0].net[0].parametrizations.weight.original
    assert w.shape[1] == old.heads[0].net[0].parametrizations.weight.original.shape[1] + 9


def test_warm_start_grows_the_d_of_a_state_without_detail(tiny_backbone, tmp_path):
    """A state saved by a run without d_rgb_detail warm-starts a run with it: G as saved, the
    heads' other weights as saved, the finest head's colour weights spread; with fresh_d the
    state's D is not read at all."""
    plain = dataclasses.replace(TRAINING_CONFIGS["tiny-rooms-projected"], d_rgb_heads=True, d_segment=1.0)
    saver = WarmTrainer(plain, tmp_path / "a", "cpu", state_out=tmp_path / "state.safetensors")
    saver.train_step()
    saver.save()
    detail = dataclasses.replace(plain, d_rgb_detail=True)
    trainer = WarmTrainer(detail, tmp_path / "b", "cpu")
    trainer.warm_start(tmp_path / "state.safetensors")
    assert trainer.images_seen == saver.images_seen
    saved, now = saver.D.state_dict(), trainer.D.state_dict()
    wide = "heads.0.net.0.parametrizations.weight.original"
    assert now[wide].shape[1] == saved[wide].shape[1] + 9
    old_w = saved[wide].float()
    assert torch.allclose(now[wide][:, -1:], old_w[:, -1:], atol=1e-3)  # the layout channel
    spread = now[wide][:, 32:44].reshape(now[wide].shape[0], 3, 4)  # colour c's 4 sub-pixels
    assert torch.allclose(spread, old_w[:, 32:35].reshape(-1, 3, 1).expand(-1, 3, 4) / 4, atol=1e-3)
    same = [k for k in saved if "heads.1." in k and "original" in k]
    assert same and all(torch.allclose(now[k], saved[k].float(), rtol=1e-2, atol=1e-2) for k in same)
    for a, b in zip(trainer.G.parameters(), saver.G.parameters()):
        assert torch.allclose(a, b, rtol=1e-2, atol=1e-2)  # (warm states are stored in half precision)
    assert torch.isfinite(torch.stack([v.float() for v in trainer.train_step().values()])).all()
    # the other way round (a detail state into a run without it) is a clear error, not a crash
    back = WarmTrainer(plain, tmp_path / "c", "cpu", state_out=tmp_path / "back.safetensors")
    trainer.state_out = tmp_path / "detail.safetensors"
    trainer.save()
    with pytest.raises(TrainStateError, match="do not fit"):
        back.warm_start(tmp_path / "detail.safetensors")


def test_a_stylegan2_state_gives_its_d_to_a_projected_recipe_as_the_pixel_d(tiny_backbone, tmp_path):
    """Session 19's figures-cpu-dual: warm-started from a StyleGAN2-recipe state, its pixel D
    is the state's D, the projected heads start new; without a pixel D the recipes must match."""
    plain = TRAINING_CONFIGS["tiny-figures-layout"]
    dual = dataclasses.replace(plain, recipe="projected", d_rgb_heads=True, d_segment=1.0, d_pixel=1.0)
    saver, _ = warm_start_d_as_pixel_d(plain, dual, tmp_path, "heads.")
    saved = saver.D.state_dict()
    fresh = WarmTrainer(dual, tmp_path / "c", "cpu").D.state_dict()  # what a copy replaced
    assert any(not torch.allclose(fresh[f"pixel.{k}"].float(), v.float(), atol=1e-2) for k, v in saved.items())
    no_pixel = dataclasses.replace(dual, d_pixel=0.0)
    with pytest.raises(TrainStateError, match="recipe='stylegan2'"):
        WarmTrainer(no_pixel, tmp_path / "d", "cpu").warm_start(tmp_path / "state.safetensors")
