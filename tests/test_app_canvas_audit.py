"""What the session-28 audit of editing found: a limb dragged far from its parent raised and
left the drag stuck, a load landing mid-drag moved the new scene's objects, one-key shortcuts
took keys from focused controls, a locked figure changed pose on New Sample, a slider held
through a pause made two undo steps, and a right-button release ended a left-button gesture."""
from PySide6.QtCore import QPoint, Qt
from test_app_helpers import WAIT_MS, drag, free_point_in_block, widget_point

from models.config import ARCHITECTURES
from models.document.scene import initial_state

pytest_plugins = ["test_app_helpers"]


def history(w) -> list[str]:
    stack = w.document.undo_stack
    return [stack.text(i) for i in range(stack.count())]


def test_a_limb_dragged_far_from_its_parent_stops_at_the_limit(qtbot, make_window):
    w = make_window(arch="tiny-figures")
    c, vp = w.canvas, w.canvas.viewport()
    root = next(h for h in c.handles.handles if h.level == 0)
    drag(qtbot, c, widget_point(c, *root.center), widget_point(c, 1.3, root.center[1]))  # past the right edge
    limb = next(h for h in c.handles.handles if h.level == 1)
    a, b = widget_point(c, *limb.center), widget_point(c, -0.3, limb.center[1])  # to past the left edge
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
    for i in range(1, 9):
        qtbot.mouseMove(vp, QPoint(round(a.x() + (b.x() - a.x()) * i / 8), a.y()))
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)
    assert not c.dragging
    level1 = w.document.state.hierarchy_centers()[1][0]
    assert level1[0] - w.document.state.objects[0].center[0] == -1.0  # the offset's limit
    assert history(w)[-1].startswith("Move")


def test_a_load_landing_mid_drag_ends_the_drag_without_an_edit(qtbot, make_window):
    w = make_window(arch="tiny-figures")
    c, vp = w.canvas, w.canvas.viewport()
    limb = [h for h in c.handles.handles if h.level == 2][1]
    start = widget_point(c, *limb.center)
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    qtbot.mouseMove(vp, start + QPoint(5, 5))
    w.files.open_checkpoint(None, arch="tiny-rooms")  # opened earlier; lands now
    qtbot.waitUntil(lambda: w.document.state.hierarchy is None, timeout=WAIT_MS)
    before = w.document.state
    qtbot.mouseMove(vp, start + QPoint(30, 30))
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start + QPoint(30, 30))
    assert w.document.state == before and history(w) == [] and not c.dragging and not w.isWindowModified()


def test_focused_controls_keep_their_keys_from_the_one_key_shortcuts(qtbot, make_window):
    w = make_window(arch="tiny-rooms-kinds")
    w.activateWindow()
    row = w.objects_panel.rows[0]
    row.visible.setFocus()
    qtbot.waitUntil(row.visible.hasFocus, timeout=WAIT_MS)
    seed, shown = w.document.state.seed, w.document.state.objects[0].visible
    qtbot.keyClick(row.visible, Qt.Key.Key_Space)  # toggles the focused check box, draws no sample
    assert w.document.state.seed == seed and w.document.state.objects[0].visible != shown
    row.kind.setFocus()
    qtbot.waitUntil(row.kind.hasFocus, timeout=WAIT_MS)
    w.canvas.grid.selected = {0}
    qtbot.keyClick(row.kind, Qt.Key.Key_R)  # picks Rug, resamples no block
    assert w.document.state.objects[0].kind == "rug" and not any("Resample" in t for t in history(w))
    w.canvas.setFocus()
    qtbot.waitUntil(w.canvas.hasFocus, timeout=WAIT_MS)
    qtbot.keyClick(w.canvas, Qt.Key.Key_N)  # elsewhere the shortcut still works
    assert w.document.state.seed != seed


def test_a_locked_figure_keeps_its_pose_on_new_sample():
    state = initial_state(ARCHITECTURES["figures"], 0).with_object(0, locked=True)
    fresh = state.new_sample(123, "skeleton")
    assert fresh.hierarchy_centers() == state.hierarchy_centers() and fresh.seed == 123


def test_a_slider_held_through_a_pause_is_one_undo_step(qtbot, make_window):
    w = make_window(arch="tiny-rooms")
    slider = w.sample_panel.truncation.slider
    slider.setSliderDown(True)  # the handle pressed
    slider.setValue(18)
    slider.setValue(16)
    qtbot.wait(1000)  # the user rests, still holding it, to look at the frame
    slider.setValue(12)
    slider.setSliderDown(False)
    assert history(w) == ["Truncation 0.60"]
    slider.setSliderDown(True)  # a new press is a new step
    slider.setValue(10)
    slider.setSliderDown(False)
    assert len(history(w)) == 2


def test_a_right_button_release_ends_no_left_button_gesture(qtbot, make_window):
    w = make_window(arch="tiny-rooms")
    c, vp = w.canvas, w.canvas.viewport()
    p = free_point_in_block(c, 0, 2)
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, p)
    qtbot.mousePress(vp, Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier, p)
    qtbot.mouseRelease(vp, Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier, p)
    assert history(w) == []  # the block is not clicked until the left button is released
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, p)
    assert history(w) == ["Resample block 1"]
