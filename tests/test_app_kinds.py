"""Choosing what an object is (a generator told kinds, GeneratorConfig.object_kinds), on the
real window: the Kind list of each object, the picture, undo."""
import numpy as np
import torch
from PySide6.QtCore import Qt
from test_app_helpers import assert_shows_render_of, shown_image, wait_for_current_frame

from models.config import ROOM_KINDS
from models.io.checkpoint import save_checkpoint
from models.io.library import open_generator, untrained_generator

pytest_plugins = ["test_app_helpers"]  # the studio fixtures: studio_env, make_window


def kinds_checkpoint(folder):
    g = untrained_generator("tiny-rooms-kinds")
    with torch.no_grad():  # trained kind vectors are not zero: each kind draws its own picture
        g.kind_vectors.copy_(torch.randn(g.kind_vectors.shape, generator=torch.Generator().manual_seed(3)) * 3)
    path = folder / "kinds.safetensors"
    save_checkpoint(path, g, {"name": "tiny kinds"}, dtype=torch.float32)
    return path, open_generator(path).generator


def test_each_object_has_a_kind_the_user_can_change_and_undo(qtbot, make_window, tmp_path):
    path, g = kinds_checkpoint(tmp_path)
    w = make_window(path)
    state = w.document.state
    assert all(o.kind in ROOM_KINDS for o in state.objects)  # a new scene draws each object's kind
    combo = w.objects_panel.rows[0].kind
    assert combo is not None and [combo.itemData(i) for i in range(combo.count())] == list(ROOM_KINDS)
    assert combo.currentData() == state.objects[0].kind
    before = shown_image(w).copy()
    combo.setFocus()
    qtbot.keyClick(combo, Qt.Key.Key_Down if combo.currentIndex() < combo.count() - 1 else Qt.Key.Key_Up)
    after = w.document.state
    assert after.objects[0].kind == combo.currentData() != state.objects[0].kind
    assert after.objects[1] == state.objects[1] and after.objects[0].center == state.objects[0].center
    assert w.document.undo_stack.undoText() == f"Object 1 a {after.objects[0].kind}"
    wait_for_current_frame(qtbot, w)
    assert_shows_render_of(w, g)
    assert not np.array_equal(shown_image(w), before), "another kind must draw another object"
    w.setFocus()
    qtbot.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert w.document.state == state and combo.currentData() == state.objects[0].kind
    wait_for_current_frame(qtbot, w)
    assert np.array_equal(shown_image(w), before)


def test_a_generator_without_kinds_shows_no_kind_list(qtbot, make_window, tiny_checkpoints):
    path, _ = tiny_checkpoints["rooms"]
    w = make_window(path)
    assert all(row.kind is None for row in w.objects_panel.rows)
    assert all(o.kind is None for o in w.document.state.objects)
