"""The scene document: validation, edits, JSON round trips."""
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.config import ARCHITECTURES
from models.document.scene import Hierarchy, ObjectState, SceneError, SceneState, initial_state, initial_state_like


def test_initial_state_fits_each_architecture():
    for name, cfg in ARCHITECTURES.items():
        s = initial_state(cfg, 7)
        s.check_fits(cfg)
        assert len(s.block_seeds) == cfg.grid ** 2, name
        assert initial_state(cfg, 7) == s  # reproducible from the seed
        assert initial_state(cfg, 8) != s


def test_state_is_immutable_and_edits_return_new_states():
    s = initial_state(ARCHITECTURES["tiny-rooms"], 1)
    with pytest.raises(AttributeError):
        s.seed = 3  # type: ignore[misc]
    moved = s.move_center(0, 1, (0.25, 0.75))
    assert moved.objects[1].center == (0.25, 0.75)
    assert s.objects[1].center != (0.25, 0.75)
    assert moved.objects[0] == s.objects[0]


def test_hierarchical_root_moves_children_and_level1_moves_its_own():
    s = initial_state(ARCHITECTURES["tiny-figures"], 3)
    before = s.hierarchy_centers()
    moved = s.move_center(0, 0, (before[0][0][0] + 0.1, before[0][0][1] - 0.05))
    after = moved.hierarchy_centers()
    for lvl_before, lvl_after in zip(before, after):
        for (x0, y0), (x1, y1) in zip(lvl_before, lvl_after):
            assert x1 == pytest.approx(x0 + 0.1) and y1 == pytest.approx(y0 - 0.05)
    # moving level-1 center 1 moves level-2 centers 2 and 3, not 0 and 1
    m2 = s.move_center(1, 1, (0.5, 0.5)).hierarchy_centers()
    assert m2[1][1] == pytest.approx((0.5, 0.5))
    assert m2[2][0] == pytest.approx(before[2][0]) and m2[2][1] == pytest.approx(before[2][1])
    dx, dy = 0.5 - before[1][1][0], 0.5 - before[1][1][1]
    assert m2[2][2] == pytest.approx((before[2][2][0] + dx, before[2][2][1] + dy))


def test_resample_blocks_changes_only_those_blocks():
    s = initial_state(ARCHITECTURES["rooms"], 0)
    r = s.resample_blocks([2, 5], seed=99)
    changed = [i for i, (a, b) in enumerate(zip(s.block_seeds, r.block_seeds)) if a != b]
    assert changed == [2, 5]
    assert s.resample_blocks([2, 5], seed=99) == r  # reproducible
    with pytest.raises(SceneError, match="block index 40"):
        s.with_block_seeds({40: 1})


def test_new_sample_keeps_locked_objects_and_view_settings():
    s = initial_state(ARCHITECTURES["rooms"], 0)
    s = s.with_object(1, locked=True, center=(0.1, 0.9))
    s = SceneState(**{**s.__dict__, "offsets_on": False, "truncation": 0.7})
    n = s.new_sample(5)
    assert n.objects[1] == s.objects[1]
    assert n.objects[0] != s.objects[0] and n.objects[2] != s.objects[2]
    assert n.block_seeds != s.block_seeds
    assert (n.offsets_on, n.truncation, n.seed) == (False, 0.7, 5)


def test_json_round_trip_exact():
    for cfg in ARCHITECTURES.values():
        s = initial_state(cfg, 11)
        if s.objects:
            s = s.move_center(0, 0, (0.123456789, 0.5))
        text = json.dumps(s.to_dict())
        assert SceneState.from_dict(json.loads(text)) == s


@pytest.mark.parametrize("patch, message", [
    ({"seed": -1}, "seed"),
    ({"seed": 1.5}, "seed"),
    ({"truncation": "high"}, "truncation"),
    ({"offset_strength": 3.0}, "offset_strength"),
    ({"offsets_on": "yes"}, "offsets_on"),
    ({"objects": [{"center": [0.5]}]}, "center"),
    ({"objects": [{"center": [0.5, 0.5], "sigma": -1}]}, "sigma"),
    ({"objects": [{"center": [0.5, 0.5], "colour": 1}]}, "objects\\[0\\]"),
    ({"objects": [{"center": [float("nan"), 0.5]}]}, "finite"),
    ({"hierarchy": {"offsets1": [[0, 0]], "offsets2": []}}, "offsets1"),
    ({"block_seeds": [1, 2**40]}, "block seed"),
    ({"bogus": 1}, "unknown scene keys"),
])
def test_invalid_scenes_name_the_value(patch, message):
    d = initial_state(ARCHITECTURES["tiny-rooms"], 0).to_dict()
    d.update(patch)
    with pytest.raises(SceneError, match=message):
        SceneState.from_dict(d)


def test_check_fits_names_the_mismatch():
    s = initial_state(ARCHITECTURES["tiny-rooms"], 0)
    with pytest.raises(SceneError, match="objects"):
        s.check_fits(ARCHITECTURES["rooms"])
    with pytest.raises(SceneError, match="hierarchical"):
        SceneState(objects=(ObjectState((0.5, 0.5)),)).check_fits(ARCHITECTURES["tiny-figures"])


def test_initial_state_like_matches_shape():
    s = initial_state(ARCHITECTURES["tiny-figures"], 2)
    t = initial_state_like(s, 9)
    assert len(t.objects) == 1 and isinstance(t.hierarchy, Hierarchy) and t.block_seeds == ()


@settings(max_examples=40, deadline=None)
@given(x=st.floats(-1, 2), y=st.floats(-1, 2), sigma=st.floats(0, 1), seed=st.integers(0, 2**31 - 1),
       strength=st.floats(0, 2), on=st.booleans())
def test_any_valid_state_round_trips(x, y, sigma, seed, strength, on):
    s = SceneState(seed=seed, objects=(ObjectState((x, y), sigma, seed),), offsets_on=on, offset_strength=strength)
    assert SceneState.from_dict(json.loads(json.dumps(s.to_dict()))) == s
