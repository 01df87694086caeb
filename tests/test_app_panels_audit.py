"""What the audit of the studio's side panels and window chrome found (see each test)."""
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from test_app_helpers import WAIT_MS, answer_modal_dialog, wait_for_current_frame

pytest_plugins = ["test_app_helpers"]

CTRL, SHIFT = Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.ShiftModifier


def history(w) -> list[str]:
    stack = w.document.undo_stack
    return [stack.text(i) for i in range(stack.count())]


def focus(qtbot, w, widget) -> None:
    w.activateWindow()
    widget.setFocus()
    qtbot.waitUntil(widget.hasFocus, timeout=WAIT_MS)


def test_ctrl_z_undoes_the_scene_while_a_spin_box_has_the_focus(qtbot, make_window):
    """Stepping the seed or a sigma with the arrow keys leaves the box focused; Ctrl+Z then did
    nothing (the box's line edit claimed it, with nothing of its own to undo)."""
    w = make_window(arch="tiny-rooms")
    seed_box = w.sample_panel.seed
    focus(qtbot, w, seed_box)
    before = w.document.state
    qtbot.keyClick(seed_box, Qt.Key.Key_Up)
    assert w.document.state.seed == before.seed + 1 and history(w) == [f"New sample (seed {before.seed + 1})"]
    qtbot.keyClick(seed_box, Qt.Key.Key_Z, CTRL)
    assert w.document.state == before and seed_box.value() == before.seed
    qtbot.keyClick(seed_box, Qt.Key.Key_Z, CTRL | SHIFT)
    assert w.document.state.seed == before.seed + 1 and seed_box.value() == before.seed + 1

    sigma = w.objects_panel.rows[0].sigma
    focus(qtbot, w, sigma)
    was = w.document.state.objects[0].sigma
    qtbot.keyClick(sigma, Qt.Key.Key_Up)
    assert w.document.state.objects[0].sigma != was
    qtbot.keyClick(sigma, Qt.Key.Key_Z, CTRL)
    assert w.document.state.objects[0].sigma == was and sigma.value() == round(was, 3)


def test_ctrl_z_still_undoes_typing_not_yet_entered(qtbot, make_window):
    w = make_window(arch="tiny-rooms")
    box = w.sample_panel.seed
    focus(qtbot, w, box)
    qtbot.keyClick(box, Qt.Key.Key_Up)  # one edit in the history
    box.selectAll()
    qtbot.keyClicks(box, "77")
    qtbot.keyClick(box, Qt.Key.Key_Z, CTRL)  # takes back the typing, not the sample
    assert len(history(w)) == 1 and w.document.undo_stack.index() == 1


def test_a_dock_the_user_closed_stays_closed_across_models_and_restarts(qtbot, make_window):
    """Closing the Heatmaps dock lasted until the next model opened: every open (and every
    start, after the remembered layout) showed it again."""
    w = make_window(arch="tiny-rooms")
    w.dock_heatmaps.toggleViewAction().trigger()  # View > Heatmaps, unticked
    w.dock_objects.close()  # its title bar's close button
    assert not w.dock_heatmaps.isVisibleTo(w) and not w.dock_objects.isVisibleTo(w)
    w.files.open_checkpoint(None, arch="tiny-figures")
    qtbot.waitUntil(lambda: w.document.config.hierarchical, timeout=WAIT_MS)
    assert not w.dock_heatmaps.isVisibleTo(w) and not w.dock_objects.isVisibleTo(w)
    assert w.dock_mtm.isVisibleTo(w) and w.dock_sample.isVisibleTo(w)
    w.close()

    again = make_window(arch="tiny-rooms")
    assert not again.dock_heatmaps.isVisibleTo(again) and not again.dock_objects.isVisibleTo(again)
    again.dock_heatmaps.toggleViewAction().trigger()  # shown again by the user: stays shown
    again.files.open_checkpoint(None, arch="tiny-figures")
    qtbot.waitUntil(lambda: again.document.config.hierarchical, timeout=WAIT_MS)
    assert again.dock_heatmaps.isVisibleTo(again) and not again.dock_objects.isVisibleTo(again)


def test_a_panel_the_model_cannot_use_cannot_be_shown(qtbot, make_window):
    """A model without MTM hides the MTM dock, and View > MTM offsets showed it all the same:
    its Strength slider then made undo steps that change nothing."""
    w = make_window(arch="tiny-plain")
    for dock in (w.dock_mtm, w.dock_objects, w.dock_heatmaps):
        assert not dock.isVisibleTo(w) and not dock.toggleViewAction().isEnabled(), dock.objectName()
    w.files.open_checkpoint(None, arch="tiny-rooms")
    qtbot.waitUntil(lambda: w.document.config.objects == 2, timeout=WAIT_MS)
    for dock in (w.dock_mtm, w.dock_objects, w.dock_heatmaps):
        assert dock.isVisibleTo(w) and dock.toggleViewAction().isEnabled(), dock.objectName()


@pytest.mark.parametrize("stored", ["@Variant(\\0\\0\\0\\x2\\0\\0\\0\\x5)", "", "@ByteArray(abc)"],
                         ids=["a number", "empty", "bytes"])
def test_a_foreign_recent_files_value_starts_the_studio_with_no_recent_files(qtbot, make_window, stored):
    """recent/files holding a number (a registry DWORD, an ini @Variant) raised TypeError in
    the window's constructor: the studio did not start. Empty, it made a blank entry."""
    from app import settings

    path = Path(settings.settings().fileName())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"[recent]\nfiles={stored}\n[window]\nclosed_docks={stored}\n")
    w = make_window(arch="tiny-rooms")
    assert w.recent_menu.actions() == [] and not w.recent_menu.isEnabled()
    assert w.dock_objects.isVisibleTo(w) and w.dock_heatmaps.isVisibleTo(w) and w.dock_mtm.isVisibleTo(w)


def test_a_foreign_export_folder_still_opens_export_image(qtbot, make_window):
    """export/folder holding a number made Ctrl+E raise TypeError (Path(5)): no dialog."""
    from app import settings

    path = Path(settings.settings().fileName())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[export]\nfolder=@Variant(\\0\\0\\0\\x2\\0\\0\\0\\x5)\n")
    w = make_window(arch="tiny-rooms")
    offered = []

    def cancel(dialog):
        offered.append(dialog.path.text())
        dialog.reject()

    answered = answer_modal_dialog(qtbot, cancel)
    qtbot.keyClick(w, Qt.Key.Key_E, CTRL)
    assert answered() and Path(offered[0]).parent == Path.home()


def test_the_offset_field_follows_the_layer_the_panel_shows_after_a_model_switch(qtbot, make_window):
    """The Field list is refreshed with the heatmaps, at most every 100 ms (EXTRAS_MS). A model
    opened while that wait was on (a video playing, a drag) without the layer chosen in the
    list: the list then showed the new model's first layer, and the canvas no field at all."""
    import numpy as np

    from app.overlays import mean_displacement

    w = make_window(arch="tiny-figures")  # layers 8.0 8.1 16.0 16.1
    qtbot.keyClick(w, Qt.Key.Key_F)  # the offset field on
    layer = w.mtm_panel.layer
    focus(qtbot, w, layer)
    qtbot.keyClick(layer, Qt.Key.Key_End)
    assert layer.currentText() == "16.1" and w.canvas.offsets.field is not None
    w._extras_timer.start(10 ** 6)  # a frame was shown just now: the next one's extras wait
    w.files.open_checkpoint(None, arch="tiny-rooms")  # layers 8.0 8.1
    qtbot.waitUntil(lambda: not w.document.config.hierarchical, timeout=WAIT_MS)
    wait_for_current_frame(qtbot, w)
    w._extras_timer.start(0)  # the wait ends
    qtbot.waitUntil(lambda: layer.currentText() == "8.0", timeout=WAIT_MS)
    field = w.canvas.offsets.field
    assert field is not None and np.array_equal(field, mean_displacement(w.canvas.frame.offsets["8.0"]))


@pytest.mark.parametrize("psi", [1.8, -0.5])
def test_a_session_truncation_beyond_the_slider_is_shown_as_it_is(qtbot, make_window, tmp_path, psi):
    """SceneState takes a truncation in [-1, 2]; the box stopped at the slider's [0, 1.5], so a
    session at 1.8 showed 1.50, and one step down made it 1.45."""
    from models.document.session import save_session

    w = make_window(arch="tiny-rooms")
    path = tmp_path / "scene.json"
    save_session(path, replace(w.document.state, truncation=psi), w.document.info.ref)
    w.files.open_session(path)
    qtbot.waitUntil(lambda: w.document.state.truncation == psi, timeout=WAIT_MS)
    box = w.sample_panel.truncation.spin
    assert box.value() == psi
    focus(qtbot, w, box)
    qtbot.keyClick(box, Qt.Key.Key_Down)
    assert w.document.state.truncation == round(psi - 0.05, 4) and box.value() == round(psi - 0.05, 2)


def test_a_recent_file_that_is_gone_is_said_and_dropped(qtbot, make_window, tiny_checkpoints, tmp_path):
    """An Open Recent entry whose file was moved or deleted stayed in the menu for good."""
    import shutil

    from app import settings

    rooms = tiny_checkpoints["rooms"][0]
    moved = tmp_path / "moved.safetensors"
    shutil.copy(rooms, moved)
    w = make_window(moved)
    assert settings.recent_files()[0] == str(moved.resolve())
    qtbot.keyClick(w, Qt.Key.Key_N)  # an edit: a file that opened would ask about it first
    edited = w.document.state
    moved.unlink()
    entry = next(a for a in w.recent_menu.actions() if a.text() == "moved.safetensors")
    entry.trigger()
    title, message = w.last_error
    assert str(moved.resolve()) in message and "no longer exists" in message
    assert str(moved.resolve()) not in settings.recent_files()
    assert "moved.safetensors" not in [a.text() for a in w.recent_menu.actions()]
    assert w.document.state == edited  # nothing replaced, nothing asked
