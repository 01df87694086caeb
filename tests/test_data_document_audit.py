"""Audit of the procedural data and the scene document: edits that must not make scenes their
own file checks refuse, indices that must not wrap around from the end, and errors that say
what is wrong."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from models.config import ARCHITECTURES
from models.data.rooms import sample_rooms
from models.document.scene import ObjectState, SceneError, SceneState, initial_state
from models.document.session import CheckpointRef, parse_session, session_to_json


def rooms_scene() -> SceneState:
    return initial_state(ARCHITECTURES["tiny-rooms"], 1)


def figure_scene() -> SceneState:
    return initial_state(ARCHITECTURES["tiny-figures"], 3)


@pytest.mark.parametrize("flag", ["visible", "locked"])
@pytest.mark.parametrize("value", [0, 1, "yes", None])
def test_an_edit_cannot_make_a_scene_that_saves_but_does_not_open(flag, value):
    # ObjectState checked its flags only in from_dict: with_object(0, visible=1) made a scene
    # that was saved as `"visible": 1` and then refused when the session was opened.
    with pytest.raises(SceneError, match=f"object {flag} must be true or false, got {value!r}"):
        rooms_scene().with_object(0, **{flag: value})
    with pytest.raises(SceneError, match=flag):
        ObjectState((0.5, 0.5), **{flag: value})


@settings(max_examples=40, deadline=None)
@given(index=st.integers(0, 1), visible=st.booleans(), locked=st.booleans())
def test_flag_edits_round_trip_through_a_session(index, visible, locked):
    s = rooms_scene().with_object(index, visible=visible, locked=locked)
    loaded, _ = parse_session(session_to_json(s, CheckpointRef(None, None, "tiny-rooms")))
    assert loaded == s


@pytest.mark.parametrize("level, index", [(1, -1), (1, 2), (2, -1), (2, -4), (2, 4), (0, 1), (0, -1)])
def test_a_hierarchy_handle_index_outside_its_level_is_refused(level, index):
    # move_center(1, -1, ...) moved level-1 center 1 (Python's index from the end) and
    # move_center(2, 4, ...) raised a bare IndexError; level 0 ignored the index.
    s = figure_scene()
    with pytest.raises(SceneError, match=f"hierarchy level {level} index {index} is outside"):
        s.move_center(level, index, (0.5, 0.5))


def test_valid_hierarchy_handles_still_move():
    s = figure_scene()
    for level, count in ((0, 1), (1, 2), (2, 4)):
        for i in range(count):
            moved = s.move_center(level, i, (0.4, 0.6))
            assert moved.hierarchy_centers()[level][i] == pytest.approx((0.4, 0.6))


@pytest.mark.parametrize("index", [True, 0.5, "0"])
def test_object_and_block_indices_must_be_integers(index):
    s = rooms_scene()
    with pytest.raises(SceneError, match="object index must be an integer"):
        s.with_object(index, sigma=0.1)
    with pytest.raises(SceneError, match="block index must be an integer"):
        s.with_block_seeds({index: 5})


def test_numpy_integers_are_indices():
    np = pytest.importorskip("numpy")
    s = rooms_scene()
    assert s.with_object(np.int64(1), sigma=0.3).objects[1].sigma == 0.3
    assert s.with_block_seeds({np.int64(0): 5}).block_seeds[0] == 5


@pytest.mark.parametrize("center", ["12", b"12", [True, False], ["0.5", 0.5]])
def test_a_center_that_is_not_two_numbers_is_refused(center):
    # "12" unpacked into the digits "1" and "2" and loaded as the point (1.0, 2.0).
    data = rooms_scene().to_dict()
    data["objects"][0]["center"] = center
    with pytest.raises(SceneError, match="object center must be a pair of numbers"):
        SceneState.from_dict(data)


@pytest.mark.parametrize("index", [3, -1])
def test_moving_a_room_object_slot_that_does_not_exist_says_so(index):
    # torch's one_hot said only "Class values must be smaller than num_classes" (or "non-negative").
    p = sample_rooms(2, 3, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=rf"object index must be in 0\.\.2 .*got \[{index}\]"):
        p.moved(index, (0.1, 0.0))
    with pytest.raises(ValueError, match=rf"got \[{index}\]"):
        p.moved(torch.tensor([0, index]), torch.zeros(2, 2))
