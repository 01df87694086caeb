import os

import pytest
import torch

# The whole suite is CPU-only and must be deterministic; two threads match the CI machine.
torch.set_num_threads(min(2, torch.get_num_threads()))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# The studio's worker traces the generator when idle (models/synthesis.py); a trace costs
# 0.2-0.5 s even for the tiny models and would delay the frames the GUI tests wait for.
# Tracing gives the same pixels (tests/test_synthesis.py) and is tested on its own there.
os.environ.setdefault("STEERGAN_TRACE", "0")
# The render worker adapts its thread count to the load (app/cpu_threads.py); the suite keeps
# one count, so that renders on the worker match the references tests compute themselves.
os.environ.setdefault("STEERGAN_ADAPT_THREADS", "0")
# Without a GPU, the Triton MTM kernels run in Triton's interpreter on CPU tensors
# (tests/test_kernels_triton.py). triton reads this switch when it is first imported, so it is
# set here, before any test can import it; nothing else in the suite uses triton.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="session", autouse=True)
def test_log_folder(tmp_path_factory):
    """The studio's log (app/logs.py) goes to a temporary folder, never the user's data
    folder: also for studios the tests start in a subprocess (they inherit it)."""
    patch = pytest.MonkeyPatch()
    folder = tmp_path_factory.mktemp("logs")
    patch.setenv("STEERGAN_LOG_DIR", str(folder))
    yield folder
    patch.undo()


@pytest.fixture(scope="session")
def tiny_generators():
    """One untrained tiny generator per capability set, built once."""
    from models.io.library import untrained_generator

    return {name: untrained_generator(name) for name in ("tiny-rooms", "tiny-figures", "tiny-plain")}


def with_live_offsets(generator, scale: float = 0.3, seed: int = 0):
    """Give the MTM offset predictors non-zero weights (they start at zero), so that tests
    can see offsets act. Returns the same generator, modified in place."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in generator.named_parameters():
            if name.endswith("offset_weight") or name.endswith("offset_bias"):
                p.copy_(torch.randn(p.shape, generator=g) * scale)
    return generator


@pytest.fixture
def tiny_backbone(tmp_path, monkeypatch):
    """An untrained projected-D backbone file, named for the trainer by STEERGAN_D_BACKBONE
    (tests/test_projected.py, tests/test_projected_detail.py)."""
    from models.io.backbone_file import save_backbone
    from models.nets.projected import FeatureBackbone

    torch.manual_seed(5)
    path = tmp_path / "bb.safetensors"
    save_backbone(path, FeatureBackbone(["background", "thing"]), {"steps": 0})
    monkeypatch.setenv("STEERGAN_D_BACKBONE", str(path))
    return path


def grow_and_train(base, architecture: str, tmp_path):
    """A base config's warm state after 2 steps, warm-started into `architecture` (which grows
    weights of its own) and trained one step more: the grown trainer (test_bones, test_palette)."""
    import dataclasses

    from models.training.gpu_worker import WarmTrainer

    state = tmp_path / "base" / "state.safetensors"
    WarmTrainer(base, tmp_path / "base", "cpu", state_out=state).run(max_steps=2)
    grown = WarmTrainer(dataclasses.replace(base, architecture=architecture), tmp_path / "grown", "cpu")
    grown.warm_start(state)
    assert grown.images_seen == 2 * base.batch
    grown.state_out = tmp_path / "grown" / "state.safetensors"
    grown.run(max_steps=3)  # (steps in all: one more)
    return grown


def warm_start_d_as_pixel_d(plain, projected, tmp_path, heads_prefix: str):
    """A StyleGAN2-recipe state after one step, warm-started into a projected recipe with a
    pixel D: its D must arrive as the pixel D (`pixel.*`, to half precision, as warm states are
    stored) and the heads (`heads_prefix`) stay as built; one step more trains with finite
    losses. -> (the saver, the warm-started trainer) for the caller's own checks
    (test_projected_detail: a still D; test_clips_projected: the video D)."""
    from models.training.gpu_worker import WarmTrainer

    saver = WarmTrainer(plain, tmp_path / "a", "cpu", state_out=tmp_path / "state.safetensors")
    saver.train_step()
    saver.save()
    trainer = WarmTrainer(projected, tmp_path / "b", "cpu")
    heads_before = {k: v.clone() for k, v in trainer.D.state_dict().items() if k.startswith(heads_prefix)}
    assert heads_before
    trainer.warm_start(tmp_path / "state.safetensors")
    saved, now = saver.D.state_dict(), trainer.D.state_dict()
    assert saved and all(torch.allclose(now[f"pixel.{k}"].float(), v.float(), rtol=1e-2, atol=1e-2)
                         for k, v in saved.items())
    assert all(torch.equal(now[k], v) for k, v in heads_before.items())  # the heads: new, as built
    assert torch.isfinite(torch.stack([v.float() for v in trainer.train_step().values()])).all()
    return saver, trainer


def two_steps_train_g_with_the_limb_judge_frozen(trainer) -> None:
    """Two training steps of a limb_segment trainer: the loss is finite and positive, G's
    weights move, and the frozen judge (the D's backbone or the part segmenter) stays
    bit-identical, its BatchNorm statistics too (test_limb_segment, test_parts)."""
    import math

    assert trainer._limb_segmenter is not None
    before = {k: v.clone() for k, v in trainer._limb_segmenter.state_dict().items()}
    g_before = [p.detach().clone() for p in trainer.G.parameters()]
    stats: dict = {}
    for _ in range(2):
        stats.update(trainer.train_step())
    assert "limb" in stats and math.isfinite(float(stats["limb"])) and float(stats["limb"]) > 0
    after = trainer._limb_segmenter.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(not torch.equal(a, b) for a, b in zip(g_before, trainer.G.parameters()))
