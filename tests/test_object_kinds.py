"""Objects told their kind (GeneratorConfig.object_kinds): the generator, the per-pixel loss
that asks for the kind, the trainer that feeds the renderer's kinds, the config's errors."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from models.config import ARCHITECTURES, ROOM_KINDS, ConfigError, GeneratorConfig
from models.nets.generator import Generator
from models.nets.heatmaps import gaussian_heatmaps
from models.training.losses import g_segment_loss, intended_kinds
from tests.conftest import grow_and_train

CLASSES = ["background", *ROOM_KINDS, "figure"]  # the D's classes (metrics.probe.probe_classes)
KIND_CLASSES = torch.tensor([CLASSES.index(k) for k in ROOM_KINDS])
N = len(CLASSES)
ANY_OBJECT, RIM = N + 1, N + 2  # intended_kinds' codes


def _layout(kinds: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Two objects, left and right of the middle, at 32 px: their heatmaps [1, 2, 32, 32]."""
    centers = torch.tensor([[[0.25, 0.5], [0.75, 0.5]]])
    heat = gaussian_heatmaps(centers, torch.full((1, 2), 0.08), 32)
    return heat, torch.tensor([kinds])


def test_the_intended_map_puts_each_objects_kind_at_its_place():
    heat, kinds = _layout([ROOM_KINDS.index("bed"), ROOM_KINDS.index("lamp")])
    labels = intended_kinds(heat, kinds, KIND_CLASSES, N)
    assert labels.shape == (1, 32, 32) and labels.dtype == torch.long
    assert int(labels[0, 16, 8]) == CLASSES.index("bed")  # the left object's centre
    assert int(labels[0, 16, 24]) == CLASSES.index("lamp")  # the right one's
    assert int(labels[0, 0, 0]) == 0 and int(labels[0, 31, 16]) == 0  # far from both: background
    rim = labels[0, 16, :8]  # from the left edge to the left object's centre: background, rim, bed
    assert 0 in rim.tolist() and RIM in rim.tolist()
    assert set(labels.unique().tolist()) == {0, CLASSES.index("bed"), CLASSES.index("lamp"), RIM}


def test_an_object_whose_kind_is_not_said_asks_for_any_object():
    heat, kinds = _layout([-1, ROOM_KINDS.index("plant")])
    labels = intended_kinds(heat, kinds, KIND_CLASSES, N)
    assert int(labels[0, 16, 8]) == ANY_OBJECT and int(labels[0, 16, 24]) == CLASSES.index("plant")


def _logits_showing(cls_left: int, cls_right: int) -> torch.Tensor:
    """D's class logits [1, N + 1, 32, 32]: background, and the two classes in discs of 4.5 px
    about the objects' centres (inside the rim: their heat > 0.5 within 3 px, < 0.1 beyond 5.5)."""
    logits = torch.full((1, N + 1, 32, 32), -8.0)
    logits[:, 0] = 8.0
    ys, xs = torch.meshgrid(torch.arange(32) + 0.5, torch.arange(32) + 0.5, indexing="ij")
    for cls, cx in ((cls_left, 8.0), (cls_right, 24.0)):
        disc = (ys - 16.0) ** 2 + (xs - cx) ** 2 < 4.5 ** 2
        logits[:, :, disc] = -8.0
        logits[:, cls, disc] = 8.0
    return logits


def test_g_is_rewarded_for_the_kind_it_was_asked_for_not_for_any_object():
    heat, kinds = _layout([ROOM_KINDS.index("bed"), ROOM_KINDS.index("window")])
    intended = intended_kinds(heat, kinds, KIND_CLASSES, N)
    valid = torch.ones(1, 32, 32, dtype=torch.bool)
    right = g_segment_loss(_logits_showing(CLASSES.index("bed"), CLASSES.index("window")), valid, None, intended)
    swapped = g_segment_loss(_logits_showing(CLASSES.index("window"), CLASSES.index("bed")), valid, None, intended)
    assert float(right) < 0.1 < 5.0 < float(swapped)
    # without kinds (the layout's summed heat only), both are "an object": equally good
    summed = heat.sum(dim=1, keepdim=True).clamp(0, 1)
    a = g_segment_loss(_logits_showing(CLASSES.index("bed"), CLASSES.index("window")), valid, summed)
    b = g_segment_loss(_logits_showing(CLASSES.index("window"), CLASSES.index("bed")), valid, summed)
    assert abs(float(a) - float(b)) < 1e-5
    # a pixel the augmentation padded (-1) counts for nothing
    padded = intended.clone()
    padded[:, :, :16] = -1  # the left half, where the wrong kind is
    swapped_left = g_segment_loss(_logits_showing(CLASSES.index("window"), CLASSES.index("window")), padded >= 0,
                                  None, padded)
    assert float(swapped_left) < 0.1


def test_a_generator_grown_with_kinds_draws_what_it_drew_until_they_learn():
    torch.manual_seed(0)
    g0, g1 = Generator(ARCHITECTURES["tiny-rooms-own"]).eval(), Generator(ARCHITECTURES["tiny-rooms-kinds"]).eval()
    missing, unexpected = g1.load_state_dict(g0.state_dict(), strict=False)
    assert missing == ["kind_vectors"] and not unexpected
    lat0 = g0.sample_latents(3, torch.Generator().manual_seed(1))
    lat1 = g1.sample_latents(3, torch.Generator().manual_seed(1))
    for f in dataclasses.fields(lat0):  # the same draws, and the kinds after them
        if f.name == "kinds":
            continue
        a = getattr(lat0, f.name)
        assert (a is None and getattr(lat1, f.name) is None) or torch.equal(a, getattr(lat1, f.name))
    assert lat0.kinds is None and lat1.kinds is not None
    assert lat1.kinds.shape == (3, 2) and int(lat1.kinds.max()) < len(ROOM_KINDS)
    with torch.no_grad():
        before = g0(lat1, noise_mode="const")
        assert torch.equal(before, g1(lat1, noise_mode="const"))
        g1.kind_vectors.normal_()
        told = g1(lat1, noise_mode="const")
        assert not torch.allclose(told, before, atol=1e-3)  # the kind changes the picture
        unsaid = dataclasses.replace(lat1, kinds=torch.full_like(lat1.kinds, -1))
        assert torch.equal(g1(unsaid, noise_mode="const"), before)  # -1: no kind said, no vector
        assert torch.equal(g1(dataclasses.replace(lat1, kinds=None), noise_mode="const"), before)


def test_the_config_refuses_bad_kinds_and_keeps_loading_old_ones():
    own = ARCHITECTURES["tiny-rooms-own"].to_dict()
    assert "object_kinds" in own and own["object_kinds"] == []
    del own["object_kinds"]  # a checkpoint written before kinds existed
    assert GeneratorConfig.from_dict(own).object_kinds == ()
    kinds = ARCHITECTURES["tiny-rooms-kinds"]
    assert GeneratorConfig.from_dict(kinds.to_dict()) == kinds
    assert kinds.capabilities()["kinds"] == list(ROOM_KINDS)
    with pytest.raises(ConfigError, match="object_kinds needs objects"):
        dataclasses.replace(ARCHITECTURES["tiny-figures"], object_kinds=("bed",))
    with pytest.raises(ConfigError, match="different names"):
        dataclasses.replace(kinds, object_kinds=("bed", "bed"))
    with pytest.raises(ConfigError, match="object_kinds must be a list"):
        GeneratorConfig.from_dict({**kinds.to_dict(), "object_kinds": "bed"})


def test_training_feeds_the_renderers_kinds_and_learns_the_kind_vectors(tmp_path):
    from models.training.configs import training_config

    base = dataclasses.replace(training_config("tiny-rooms-kinds"), architecture="tiny-rooms-own")
    grown = grow_and_train(base, "tiny-rooms-kinds", tmp_path)
    assert float(grown.G.kind_vectors.detach().abs().sum()) > 0  # the per-pixel loss reached them
    assert grown._kind_classes is not None and grown._kind_classes.tolist() == list(range(1, len(ROOM_KINDS) + 1))
    lat = grown._latents(4)
    assert lat.kinds is not None and lat.kinds.shape == (4, 2)
    assert ((lat.kinds >= 0) == (lat.sigmas > 0)).all()  # a present object's kind, -1 for an absent one


def test_kinds_the_ds_classes_do_not_know_are_one_line_errors(tmp_path, monkeypatch):
    from models.training.configs import training_config
    from models.training.trainer import Trainer

    monkeypatch.setitem(ARCHITECTURES, "tiny-rooms-sofa",
                        dataclasses.replace(ARCHITECTURES["tiny-rooms-kinds"], object_kinds=("bed", "sofa")))
    cfg = dataclasses.replace(training_config("tiny-rooms-kinds"), architecture="tiny-rooms-sofa")
    with pytest.raises(ValueError, match=r"names object kinds \['sofa'\]"):
        Trainer(cfg, tmp_path, log=lambda m: None)


def test_a_crop_is_centred_on_its_object_and_repeats_the_border():
    from models.metrics.kinds import object_crops

    images = torch.zeros(1, 3, 64, 64)
    images[0, :, 30:34, 10:14] = 1.0  # a 4 px square about (12, 32)
    images[0, 0, :, 0] = -1.0  # the left column, red channel
    crops = object_crops(images, torch.tensor([[[12 / 64, 32 / 64], [0.0, 0.5]]]), torch.tensor([[True, True]]))
    assert crops.shape == (2, 3, 24, 24)
    assert torch.equal(crops[0, :, 10:14, 10:14], torch.ones(3, 4, 4))  # the square in the middle
    assert float(crops[0, 1:].sum()) == 2 * 16  # and nothing else (the red edge column aside)
    assert (crops[1, 0, :, :13] == -1.0).all()  # past the left edge: the edge repeated


def test_the_namer_names_real_objects_and_a_blank_generator_does_not_draw_them():
    from models.metrics.kinds import kind_accuracy

    torch.manual_seed(0)
    told = kind_accuracy(Generator(ARCHITECTURES["tiny-rooms-kinds"]).eval(), samples=48, train_images=384)
    assert told["kinds_told"] is True
    assert told["kind_accuracy_real"] > 0.35  # chance is 1/6
    assert told["kind_accuracy"] < told["kind_accuracy_real"]  # an untrained G draws colour noise
    untold = kind_accuracy(Generator(ARCHITECTURES["tiny-rooms-own"]).eval(), samples=48, train_images=384)
    assert untold["kinds_told"] is False and untold["kind_accuracy_real"] == told["kind_accuracy_real"]
    with pytest.raises(ValueError, match="needs a rooms generator"):
        kind_accuracy(Generator(ARCHITECTURES["tiny-figures"]).eval(), samples=8)


def test_a_scene_draws_kinds_for_a_generator_told_them_and_keeps_them_in_its_file():
    from models.document.scene import SceneError, SceneState, initial_state
    from models.render import latents_for

    told, untold = ARCHITECTURES["tiny-rooms-kinds"], ARCHITECTURES["tiny-rooms-own"]
    a, b = initial_state(told, 7), initial_state(untold, 7)
    assert all(o.kind in ROOM_KINDS for o in a.objects) and all(o.kind is None for o in b.objects)
    # the kinds are drawn after everything else: the same seed draws the same scene otherwise
    assert dataclasses.replace(a, objects=tuple(dataclasses.replace(o, kind=None) for o in a.objects)) == b
    assert {o.kind for s in range(20) for o in initial_state(told, s).objects} == set(ROOM_KINDS)
    data = a.to_dict()
    assert [o["kind"] for o in data["objects"]] == [o.kind for o in a.objects]
    assert SceneState.from_dict(data) == a
    assert "kind" not in b.to_dict()["objects"][0]  # older readers open scenes without kinds
    lamp = a.with_object(1, kind="lamp")
    G = Generator(told)
    lat = latents_for(G, lamp)
    assert lat.kinds is not None and lat.kinds[0].tolist() == [ROOM_KINDS.index(a.objects[0].kind), 3]
    unsaid = latents_for(G, lamp.with_object(0, kind=None))
    assert unsaid.kinds is not None and int(unsaid.kinds[0, 0]) == -1
    assert latents_for(Generator(untold), b).kinds is None
    with pytest.raises(SceneError, match=r"object 2 is a 'lamp', and the generator is not told kinds"):
        b.with_object(1, kind="lamp").check_fits(untold)
    with pytest.raises(SceneError, match=r"object 1 is a 'sofa', and the generator is one of \['bed'"):
        a.with_object(0, kind="sofa").check_fits(told)
    with pytest.raises(SceneError, match="object kind must be null or a name"):
        SceneState.from_dict({**data, "objects": [{**data["objects"][0], "kind": 3}, *data["objects"][1:]]})
    locked = lamp.with_object(1, locked=True).new_sample(99, kinds=told.object_kinds)
    assert locked.objects[1].kind == "lamp"  # a locked object keeps what it is on "new sample"


def test_a_kind_row_draws_each_kind_once_per_layout():
    from models.metrics.kinds import kind_row

    torch.manual_seed(0)
    told = Generator(ARCHITECTURES["tiny-rooms-kinds"]).eval()
    with torch.no_grad():
        told.kind_vectors.normal_()
    row = kind_row(told, layouts=2)
    assert row.shape == (12, 3, 32, 32)
    assert all(not torch.allclose(row[i], row[j], atol=1e-4) for i in range(6) for j in range(i + 1, 6))
    untold = Generator(ARCHITECTURES["tiny-rooms-own"]).eval()
    plain = kind_row(untold, layouts=2)
    assert all(torch.equal(plain[0], plain[j]) for j in range(6))  # not told kinds: one object six times
    assert not torch.equal(plain[0], plain[6])  # the second layout


def test_clips_are_told_their_objects_kinds_too(tmp_path):
    from models.training.configs import training_config
    from models.training.gpu_worker import grown_weights
    from models.training.trainer import Trainer
    from models.training.video_step import fake_clip_latents

    assert grown_weights("clips-own", "clips-kinds") == {"kind_vectors"}  # the shipped clips state grows into it
    cfg = dataclasses.replace(training_config("tiny-clips-projected"), architecture="tiny-clips-kinds")
    trainer = Trainer(cfg, tmp_path, log=lambda m: None)
    lat, _ = fake_clip_latents(trainer, 2)
    assert lat.kinds is not None and ((lat.kinds >= 0) == (lat.sigmas > 0)).all()
    trainer.train_step()
    assert float(trainer.G.kind_vectors.detach().abs().sum()) > 0  # the per-pixel loss asked for the kinds
