"""The canvas, driven by real mouse events on its viewport: handles, sigma, blocks, bursts."""
import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from test_app_helpers import (
    assert_shows_render_of,
    click,
    drag,
    free_point_in_block,
    shown_image,
    wait_for_current_frame,
    wheel,
    widget_point,
)

pytest_plugins = ["test_app_helpers"]  # the studio fixtures: studio_env, tiny_checkpoints, make_window


def test_dragging_a_handle_moves_that_object_and_changes_the_image(qtbot, make_window, tiny_checkpoints):
    path, g = tiny_checkpoints["rooms"]
    w = make_window(path)
    before_state, before_image = w.document.state, shown_image(w).copy()
    obj = before_state.objects[0]
    start = widget_point(w.canvas, *obj.center)
    drag(qtbot, w.canvas, start, start + QPoint(-60, 40))
    state = w.document.state
    scale = w.canvas.pixels_per_unit()
    assert state.objects[0].center == pytest.approx((obj.center[0] - 60 / scale, obj.center[1] + 40 / scale), abs=2e-3)
    assert state.objects[1:] == before_state.objects[1:] and state.block_seeds == before_state.block_seeds
    assert w.document.undo_stack.count() == 1, "a drag is one undo step"
    wait_for_current_frame(qtbot, w)
    assert_shows_render_of(w, g)
    assert not np.array_equal(shown_image(w), before_image)


def test_wheel_shrinks_sigma_down_to_removing_the_object(qtbot, make_window, tiny_checkpoints):
    path, g = tiny_checkpoints["rooms"]
    w = make_window(path)
    pos = widget_point(w.canvas, *w.document.state.objects[1].center)
    wheel(w.canvas, pos, +2)
    grown = w.document.state.objects[1].sigma
    assert grown == pytest.approx(0.12 * 1.12 ** 2, abs=1e-3)
    for _ in range(40):
        wheel(w.canvas, pos, -1)
    assert w.document.state.objects[1].sigma == 0.0  # removed
    assert w.document.state.objects[0].sigma == 0.12
    assert w.document.undo_stack.count() <= 2  # quick notches merge
    wait_for_current_frame(qtbot, w)
    assert_shows_render_of(w, g)
    wheel(w.canvas, pos, +1)  # a removed object's hollow handle brings it back
    assert w.document.state.objects[1].sigma > 0


def test_dragging_the_sigma_ring_sets_sigma(qtbot, make_window, tiny_checkpoints):
    path, _ = tiny_checkpoints["rooms"]
    w = make_window(path)
    obj = w.document.state.objects[0]
    scale = w.canvas.pixels_per_unit()
    center = widget_point(w.canvas, *obj.center)
    ring = QPoint(center.x() + round(obj.sigma * scale), center.y())
    drag(qtbot, w.canvas, ring, QPoint(center.x() + round(0.2 * scale), center.y()))
    assert w.document.state.objects[0].sigma == pytest.approx(0.2, abs=3 / scale)
    assert w.document.state.objects[0].center == obj.center


def test_clicking_a_block_resamples_only_that_block(qtbot, make_window, tiny_checkpoints):
    path, g = tiny_checkpoints["rooms"]
    w = make_window(path)
    before = w.document.state
    click(qtbot, w.canvas, free_point_in_block(w.canvas, 2, grid=2))
    after = w.document.state
    changed = [i for i, (a, b) in enumerate(zip(before.block_seeds, after.block_seeds)) if a != b]
    assert changed == [2]
    assert after.objects == before.objects and after.seed == before.seed
    wait_for_current_frame(qtbot, w)
    assert_shows_render_of(w, g)
    assert w.canvas.diff.image is not None  # the difference highlight was drawn


def test_shift_click_selects_blocks_then_resamples_them_together(qtbot, make_window, tiny_checkpoints):
    path, _ = tiny_checkpoints["rooms"]
    w = make_window(path)
    before = w.document.state
    for block in (0, 3):
        click(qtbot, w.canvas, free_point_in_block(w.canvas, block, grid=2), Qt.KeyboardModifier.ShiftModifier)
    assert w.canvas.grid.selected == {0, 3} and w.document.state == before  # selecting is no edit
    qtbot.keyClick(w.canvas, Qt.Key.Key_R)
    after = w.document.state
    assert [i for i in range(4) if before.block_seeds[i] != after.block_seeds[i]] == [0, 3]
    assert w.document.undo_stack.count() == 1 and not w.canvas.grid.selected


def test_hierarchical_centers_coarse_moves_finer(qtbot, make_window, tiny_checkpoints):
    path, g = tiny_checkpoints["figures"]
    w = make_window(path)
    s0 = w.document.state
    levels = s0.hierarchy_centers()
    assert len([h for h in w.canvas.handles.handles]) == 1 + 2 + 4
    # the root drags every finer center along; the stored relative offsets do not change
    start = widget_point(w.canvas, *levels[0][0])
    drag(qtbot, w.canvas, start, start + QPoint(30, -20))
    s1 = w.document.state
    assert s1.hierarchy == s0.hierarchy and s1.objects[0].center != s0.objects[0].center
    shifted = s1.hierarchy_centers()
    dx = shifted[0][0][0] - levels[0][0][0]
    assert all(c1[0] == pytest.approx(c0[0] + dx) for c0, c1 in zip(levels[2], shifted[2]))
    # a level-1 center moves itself (and its children), not the root
    start = widget_point(w.canvas, *shifted[1][1])
    drag(qtbot, w.canvas, start, start + QPoint(-25, 15))
    s2 = w.document.state
    assert s2.objects[0].center == s1.objects[0].center and s2.hierarchy.offsets1 != s1.hierarchy.offsets1
    assert s2.hierarchy.offsets2 == s1.hierarchy.offsets2
    wait_for_current_frame(qtbot, w)
    assert_shows_render_of(w, g)
    assert {"heatmap_4", "heatmap_8", "heatmap_16"} <= set(w.canvas.frame.heatmaps)


def test_a_burst_of_1000_drag_events_ends_on_the_final_state(qtbot, make_window, tiny_checkpoints):
    path, g = tiny_checkpoints["rooms"]
    w = make_window(path)
    vp = w.canvas.viewport()
    start = widget_point(w.canvas, *w.document.state.objects[0].center)
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for i in range(1000):
        qtbot.mouseMove(vp, start + QPoint(round(80 * np.sin(i / 50)), round(60 * np.cos(i / 37) - 60)))
    end = start + QPoint(-37, 23)
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)
    final = w.document.state
    assert w.document.undo_stack.count() == 1
    wait_for_current_frame(qtbot, w)
    assert_shows_render_of(w, g, final)
    assert w.canvas.frame_id == w.request_id()  # the last request was rendered, not dropped


def test_smooth_pixels_scales_the_picture_smoothly_and_is_remembered(qtbot, make_window, tiny_checkpoints):
    from app import settings

    path, _ = tiny_checkpoints["rooms"]
    w = make_window(path)
    for name in ("handles", "grid"):
        w.canvas.set_overlay_visible(name, False)  # the picture alone

    def colours() -> int:
        qtbot.wait(50)
        image = w.canvas.viewport().grab().toImage()
        return len({image.pixel(x, y) for x in range(0, image.width(), 3) for y in range(0, image.height(), 3)})

    assert w.act_smooth.isChecked()  # the default
    smooth = colours()  # bilinear: colours between the pixels' colours
    qtbot.keyClick(w, Qt.Key.Key_S)
    assert not w.act_smooth.isChecked() and settings.get("view/smooth") in (False, "false")
    crisp = colours()  # nearest: each of the 32x32 generated pixels a square of one colour
    assert smooth > 2 * crisp
    qtbot.keyClick(w, Qt.Key.Key_S)
    assert colours() == smooth and settings.get("view/smooth") in (True, "true")
    w.close()
    again = make_window(path)  # a new window remembers the choice
    assert again.act_smooth.isChecked()
    qtbot.keyClick(again, Qt.Key.Key_S)
    assert not make_window(path).act_smooth.isChecked()
