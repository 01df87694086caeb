"""Scene edits from the keyboard and the panels, and undo/redo, on the real window."""
import numpy as np
from PySide6.QtCore import QPoint, Qt
from test_app_helpers import WAIT_MS, assert_shows_render_of, drag, shown_image, wait_for_current_frame, widget_point

pytest_plugins = ["test_app_helpers"]  # the studio fixtures: studio_env, tiny_checkpoints, make_window


def click_checkbox(qtbot, box):
    """Click on the box itself (a stretched QCheckBox's centre can be past its label)."""
    qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=QPoint(8, box.height() // 2))


def test_offsets_key_toggles_offsets_in_the_state_and_the_image(qtbot, make_window, tiny_checkpoints):
    path, g = tiny_checkpoints["rooms"]
    w = make_window(path)
    on_image = shown_image(w).copy()
    assert w.document.state.offsets_on and w.act_offsets.isChecked()
    qtbot.keyClick(w, Qt.Key.Key_O)
    assert w.document.state.offsets_on is False and not w.act_offsets.isChecked()
    wait_for_current_frame(qtbot, w)
    assert_shows_render_of(w, g)
    assert not np.array_equal(shown_image(w), on_image), "live offsets must change the picture"
    qtbot.keyClick(w, Qt.Key.Key_O)
    wait_for_current_frame(qtbot, w)
    assert w.document.state.offsets_on and np.array_equal(shown_image(w), on_image)


def test_offset_strength_and_field_overlay(qtbot, make_window, tiny_checkpoints):
    path, g = tiny_checkpoints["rooms"]
    w = make_window(path)
    w.mtm_panel.strength.spin.setValue(1.5)
    assert w.document.state.offset_strength == 1.5
    qtbot.keyClick(w, Qt.Key.Key_F)
    assert w.canvas.overlay_visible("offsets")
    wait_for_current_frame(qtbot, w)
    assert_shows_render_of(w, g)
    qtbot.waitUntil(lambda: w._extras_frame is None, timeout=WAIT_MS)  # the side views follow
    layers = [w.mtm_panel.layer.itemText(i) for i in range(w.mtm_panel.layer.count())]
    assert layers == ["8.0", "8.1"]
    field = w.canvas.offsets.field
    assert field is not None and field.shape == (2, 8, 8) and np.abs(field).max() > 0
    assert set(w.mtm_panel.stats.values) == {"8.0", "8.1"}
    assert all(mean > 0 and peak >= mean for mean, peak in w.mtm_panel.stats.values.values())


def test_new_style_changes_only_that_objects_style_seed(qtbot, make_window, tiny_checkpoints):
    path, g = tiny_checkpoints["rooms"]
    w = make_window(path)
    before = w.document.state
    qtbot.mouseClick(w.objects_panel.rows[1].new_style, Qt.MouseButton.LeftButton)
    after = w.document.state
    assert after.objects[1].style_seed != before.objects[1].style_seed
    assert after.objects[0] == before.objects[0]
    assert after.objects[1].center == before.objects[1].center and after.objects[1].sigma == before.objects[1].sigma
    assert after.block_seeds == before.block_seeds and after.background_seed == before.background_seed
    wait_for_current_frame(qtbot, w)
    assert_shows_render_of(w, g)


def test_copy_style_from_another_object(qtbot, make_window, tiny_checkpoints):
    path, _ = tiny_checkpoints["rooms"]
    w = make_window(path)
    before = w.document.state
    combo = w.objects_panel.rows[0].copy_from
    combo.activated.emit(combo.findData(1))  # what choosing "from object 2" in the list sends
    after = w.document.state
    assert after.objects[0].style_seed == before.objects[1].style_seed
    assert after.objects[0].center == before.objects[0].center and after.objects[1] == before.objects[1]
    assert combo.currentIndex() == 0


def test_locked_object_survives_new_sample(qtbot, make_window, tiny_checkpoints):
    path, _ = tiny_checkpoints["rooms"]
    w = make_window(path)
    click_checkbox(qtbot, w.objects_panel.rows[0].locked)
    locked = w.document.state.objects[0]
    assert locked.locked
    before = w.document.state
    qtbot.keyClick(w, Qt.Key.Key_N)
    after = w.document.state
    assert after.seed != before.seed
    assert after.objects[0] == locked and after.objects[1] != before.objects[1]
    qtbot.keyClick(w, Qt.Key.Key_Space)
    assert w.document.state.seed != after.seed and w.document.state.objects[0] == locked


def test_seed_box_and_truncation(qtbot, make_window, tiny_checkpoints):
    path, g = tiny_checkpoints["rooms"]
    w = make_window(path)
    box = w.sample_panel.seed
    box.setFocus()
    box.selectAll()
    qtbot.keyClicks(box, "1234")
    qtbot.keyClick(box, Qt.Key.Key_Return)
    assert w.document.state.seed == 1234
    w.sample_panel.truncation.spin.setValue(0.5)
    assert w.document.state.truncation == 0.5
    wait_for_current_frame(qtbot, w)
    assert_shows_render_of(w, g)


def test_undo_redo_restore_states_exactly(qtbot, make_window, tiny_checkpoints):
    path, g = tiny_checkpoints["rooms"]
    w = make_window(path)
    states = [w.document.state]
    start = widget_point(w.canvas, *states[0].objects[0].center)
    drag(qtbot, w.canvas, start, start + QPoint(40, 10))
    states.append(w.document.state)
    qtbot.keyClick(w, Qt.Key.Key_O)
    states.append(w.document.state)
    qtbot.mouseClick(w.objects_panel.rows[1].new_style, Qt.MouseButton.LeftButton)
    states.append(w.document.state)
    click_checkbox(qtbot, w.objects_panel.rows[1].visible)
    states.append(w.document.state)
    assert len(set(states)) == 5 and w.document.undo_stack.count() == 4
    for expected in reversed(states[:-1]):
        qtbot.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
        assert w.document.state == expected
    assert w.document.state is states[0]
    for expected in states[1:]:
        qtbot.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
        assert w.document.state == expected
    # the panels and the offsets action follow undo too
    qtbot.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert w.objects_panel.rows[1].visible.isChecked()
    wait_for_current_frame(qtbot, w)
    assert_shows_render_of(w, g)
    assert w.history.model().rowCount() == 5  # "Opened" + 4 edits


def test_panels_follow_capabilities(qtbot, make_window, tiny_checkpoints):
    w = make_window(tiny_checkpoints["plain"][0])
    assert not w.dock_objects.isVisibleTo(w) and not w.dock_mtm.isVisibleTo(w)
    assert not w.act_grid.isEnabled() and not w.act_offsets.isEnabled()
    w.files.open_checkpoint(tiny_checkpoints["figures"][0])
    qtbot.waitUntil(lambda: w.document.config.hierarchical, timeout=WAIT_MS)
    assert w.dock_objects.isVisibleTo(w) and w.dock_mtm.isVisibleTo(w)
    assert len(w.objects_panel.rows) == 1 and not w.act_grid.isEnabled()
    assert w.document.undo_stack.count() == 0  # a new generator starts a new history


def test_shortcuts_are_shown_in_the_menus_and_toggle_overlays(qtbot, make_window, tiny_checkpoints):
    w = make_window(tiny_checkpoints["rooms"][0])
    shortcuts = {a.text().replace("&", ""): a.shortcut().toString()
                 for menu in w.menuBar().findChildren(type(w.recent_menu)) for a in menu.actions()}
    for text, keys in {"Export Image…": "Ctrl+E", "Undo": "Ctrl+Z", "Redo": "Ctrl+Shift+Z", "New Sample": "N",
                       "Offsets On": "O", "Block Grid": "G", "Offset Field": "F", "Object Handles": "H"}.items():
        assert shortcuts.get(text) == keys, (text, shortcuts.get(text))
    qtbot.keyClick(w, Qt.Key.Key_G)
    assert not w.canvas.overlay_visible("grid") and w.canvas.block_at(w.canvas.to_widget(0.5, 0.5)) is None
    qtbot.keyClick(w, Qt.Key.Key_H)
    assert not w.canvas.overlay_visible("handles")
    assert w.document.undo_stack.count() == 0  # overlays are views, not scene edits
