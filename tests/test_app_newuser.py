"""The studio as a new user meets it: nothing lost on quit, Save after a crash asks where,
a first start that works (missing system libraries, a bad file), History names, the
offset arrows inside the picture, the drag preview, and `steergan --help`."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QFileDialog, QMessageBox, QStyle
from test_app_helpers import (
    WAIT_MS,
    answer_modal_dialog,
    assert_shows_render_of,
    shown_image,
    wait_for_current_frame,
    widget_point,
)

from models.document.session import load_session
from models.render import latents_for, render, to_uint8

pytest_plugins = ["test_app_helpers"]  # the studio fixtures: studio_env, tiny_checkpoints, make_window

REPO = Path(__file__).resolve().parent.parent


def press(box: QMessageBox, button) -> None:
    box.button(button).click()


def save_file_as(path):
    """An answer for the Save dialog: type the file name and accept."""
    def answer(dialog):
        assert isinstance(dialog, QFileDialog), f"expected the Save dialog, got {dialog!r}"
        dialog.selectFile(str(path))
        dialog.accept()
    return answer


# ---- 1. the title's modified marker, and closing with unsaved edits ------------------
def test_title_shows_the_document_and_a_marker_that_clean_undo_clears(qtbot, make_window, tiny_checkpoints,
                                                                      tmp_path):
    path, _ = tiny_checkpoints["rooms"]
    w = make_window(path)
    assert w.windowTitle().startswith("Untitled[*]") and not w.isWindowModified()
    qtbot.keyClick(w, Qt.Key.Key_N)  # New sample: an edit
    assert w.isWindowModified()
    qtbot.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # undo back to the opened scene
    assert not w.isWindowModified()
    qtbot.keyClick(w, Qt.Key.Key_N)
    assert w.files.save_session(tmp_path / "scene.json")
    assert w.windowTitle().startswith("scene.json[*]") and not w.isWindowModified()
    qtbot.keyClick(w, Qt.Key.Key_N)
    assert w.isWindowModified()
    qtbot.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # back to what was saved
    assert not w.isWindowModified()


def test_quit_with_unsaved_edits_asks_and_cancel_keeps_the_window(qtbot, make_window, tiny_checkpoints):
    path, _ = tiny_checkpoints["rooms"]
    w = make_window(path)
    qtbot.keyClick(w, Qt.Key.Key_N)
    edited = w.document.state
    seen = {}

    def cancel(box):
        seen["text"], seen["buttons"] = box.text(), box.standardButtons()
        press(box, QMessageBox.StandardButton.Cancel)

    answered = answer_modal_dialog(qtbot, cancel)
    qtbot.keyClick(w, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
    assert answered() and "Untitled" in seen["text"]
    assert seen["buttons"] == (QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                               | QMessageBox.StandardButton.Cancel)
    assert w.isVisible() and not w._closed and w.document.state == edited and w.isWindowModified()
    qtbot.keyClick(w, Qt.Key.Key_N)  # still working: the worker renders the next edit
    wait_for_current_frame(qtbot, w)


def test_quit_with_unsaved_edits_and_discard_closes(qtbot, make_window, tiny_checkpoints, studio_env):
    path, _ = tiny_checkpoints["rooms"]
    w = make_window(path)
    w.autosaver.start()
    qtbot.keyClick(w, Qt.Key.Key_N)
    assert w.autosaver.save_now() and w.autosaver.path.exists()
    answered = answer_modal_dialog(qtbot, lambda box: press(box, QMessageBox.StandardButton.Discard))
    qtbot.keyClick(w, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
    assert answered() and not w.isVisible() and w._closed
    assert not w.autosaver.path.exists()  # a clean exit: nothing to offer back


def test_quit_with_save_writes_the_session_first(qtbot, make_window, tiny_checkpoints, tmp_path):
    path, _ = tiny_checkpoints["rooms"]
    w = make_window(path)
    target = tmp_path / "kept.json"
    assert w.files.save_session(target)
    qtbot.keyClick(w, Qt.Key.Key_N)
    edited = w.document.state
    answered = answer_modal_dialog(qtbot, lambda box: press(box, QMessageBox.StandardButton.Save))
    qtbot.keyClick(w, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
    assert answered() and not w.isVisible()
    assert load_session(target)[0] == edited


def test_quit_without_edits_asks_nothing(qtbot, make_window, tiny_checkpoints):
    path, _ = tiny_checkpoints["rooms"]
    w = make_window(path)
    qtbot.keyClick(w, Qt.Key.Key_N)
    qtbot.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(w, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)  # a question would wait here
    assert not w.isVisible() and w._closed


# ---- 2. Save after crash recovery asks for a path -----------------------------------
def test_save_after_recovery_asks_where(qtbot, make_window, tiny_checkpoints, studio_env, tmp_path):
    from app.studio import offer_restore

    path, _ = tiny_checkpoints["rooms"]
    w = make_window(path)
    w.autosaver.start()
    for _ in range(5):  # autosaved
        qtbot.keyClick(w, Qt.Key.Key_N)
    edited = w.document.state
    # This run "crashes" (stops without its clean exit); the next one restores the scene.
    w.autosaver.active = False
    w2 = make_window(path)
    recovered = w2.autosaver.start()
    assert recovered is not None
    offer_restore(w2, recovered)
    w2.restore_prompt.accept()
    qtbot.waitUntil(lambda: w2.document.state == edited, timeout=WAIT_MS)
    assert w2.files.session_path is None and w2.isWindowModified()
    assert w2.windowTitle().startswith("Untitled[*]")
    before = recovered.read_bytes()

    target = tmp_path / "mine.json"
    answered = answer_modal_dialog(qtbot, save_file_as(target))
    qtbot.keyClick(w2, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert answered(), "Save must ask where to save a recovered scene"
    assert load_session(target)[0] == edited
    assert w2.files.session_path == str(target) and not w2.isWindowModified()
    assert recovered.read_bytes() == before  # nothing written into the app's own files


# ---- 4. a bad file at start-up: say what is wrong and open the default ----------------
@pytest.mark.parametrize("name, content", [("broken.safetensors", b"not a checkpoint"),
                                           ("broken.json", b"{ not json")])
def test_a_bad_file_at_startup_is_reported_and_the_default_opens(qtbot, make_window, studio_env, name, content):
    from app.studio import open_initial
    from models.io.library import default_checkpoint

    bad = studio_env / name
    bad.write_bytes(content)
    w = make_window()
    errors = []
    w.errorShown.connect(lambda title, message: errors.append((title, message)))
    open_initial(w, str(bad), None)
    qtbot.waitUntil(lambda: w.document.info is not None, timeout=WAIT_MS)
    wait_for_current_frame(qtbot, w)
    assert len(errors) == 1
    title, message = errors[0]
    assert name in title + message and str(bad) in message and "default checkpoint" in message
    default = default_checkpoint()
    assert (w.document.info.path is None) if default is None else \
        Path(w.document.info.path).resolve() == Path(default).resolve()


def test_the_studio_started_without_a_path_opens_the_bundled_default(qtbot, make_window, studio_env):
    """What the README's first command does: `steergan` alone opens the shipped default."""
    from app.studio import open_initial
    from models.io.library import default_checkpoint

    default = default_checkpoint()
    assert default is not None and Path(default).parent.name == "checkpoints", "a default checkpoint must ship"
    w = make_window()
    open_initial(w, None, None)
    qtbot.waitUntil(lambda: w.document.info is not None, timeout=WAIT_MS)
    wait_for_current_frame(qtbot, w)
    assert Path(w.document.info.path).resolve() == Path(default).resolve()
    assert not w.isWindowModified()


# ---- 5. History names a merged slider drag by its final value ------------------------
def slider_handle_point(slider) -> QPoint:
    style = slider.style()
    length = style.pixelMetric(QStyle.PixelMetric.PM_SliderLength, None, slider)
    x = QStyle.sliderPositionFromValue(slider.minimum(), slider.maximum(), slider.value(), slider.width() - length)
    return QPoint(x + length // 2, slider.height() // 2)


def test_history_names_a_slider_drag_by_where_it_ended(qtbot, make_window, tiny_checkpoints):
    path, _ = tiny_checkpoints["rooms"]
    w = make_window(path)
    slider = w.mtm_panel.strength.slider
    qtbot.waitUntil(slider.isVisible)
    start = slider_handle_point(slider)
    qtbot.mousePress(slider, Qt.MouseButton.LeftButton, pos=start)
    assert slider.isSliderDown()
    end = QPoint(slider.width() + 40, start.y())  # past the end: the maximum, 2.00
    for i in range(1, 9):
        qtbot.mouseMove(slider, QPoint(start.x() + (end.x() - start.x()) * i // 8, start.y()))
    qtbot.mouseRelease(slider, Qt.MouseButton.LeftButton, pos=end)
    assert w.document.state.offset_strength == 2.0
    stack = w.document.undo_stack
    assert stack.count() == 1, "one drag is one step"
    model = w.history.model()
    names = [model.index(row, 0).data() for row in range(model.rowCount())]
    assert names == ["Opened", "Offset strength 2.00"]


# ---- 6. the offset-field arrows stay inside the image -------------------------------
def test_offset_arrows_are_clipped_to_the_image(qtbot, make_window, tiny_checkpoints):
    from app import theme

    path, _ = tiny_checkpoints["rooms"]
    w = make_window(path)
    for key in (Qt.Key.Key_H, Qt.Key.Key_G, Qt.Key.Key_F):  # handles and grid off, the field on
        qtbot.keyClick(w, key)
    w.mtm_panel.gain.setValue(w.mtm_panel.gain.maximum())  # long arrows: they reach past the edges
    qtbot.waitUntil(lambda: w.canvas.offsets.field is not None)
    vp = w.canvas.viewport()
    vp.repaint()
    grab = vp.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    pixels = np.frombuffer(grab.constBits(), np.uint8).reshape(grab.height(), grab.bytesPerLine())
    pixels = pixels[:, : grab.width() * 3].reshape(grab.height(), grab.width(), 3)
    ratio = grab.devicePixelRatio()
    top_left, bottom_right = w.canvas.to_widget(0, 0), w.canvas.to_widget(1, 1)
    x0, y0 = int(top_left.x() * ratio) - 1, int(top_left.y() * ratio) - 1
    x1, y1 = int(np.ceil(bottom_right.x() * ratio)) + 1, int(np.ceil(bottom_right.y() * ratio)) + 1
    outside = np.ones(pixels.shape[:2], bool)
    outside[max(0, y0):y1, max(0, x0):x1] = False
    colour = np.array(w.canvas.backgroundBrush().color().getRgb()[:3])
    arrow = np.array(theme_colour(theme.OFFSET_COLOUR))
    inside = pixels[~outside].reshape(-1, 3)
    assert (np.abs(inside.astype(int) - arrow).sum(axis=1) < 60).any(), "the field is drawn in the image"
    strays = np.abs(pixels[outside].astype(int) - colour).sum(axis=1) > 24
    assert not strays.any(), f"{int(strays.sum())} pixels drawn outside the image"


def theme_colour(value) -> tuple[int, int, int]:
    from PySide6.QtGui import QColor

    return QColor(value).getRgb()[:3]


# ---- 7. the drag preview, then the full frame ----------------------------------------
def test_render_preview_is_the_skip_rgb_upsampled(tiny_checkpoints):
    _, g = tiny_checkpoints["rooms"]
    from models.document.scene import initial_state

    state = initial_state(g.config, 3)
    full = render(g, state)
    same = render(g, state, preview=g.config.resolution)
    assert not full.preview and not same.preview and np.array_equal(full.image, same.image)
    frame = render(g, state, extras=True, preview=16)
    assert frame.preview and frame.image.shape == full.image.shape
    with torch.no_grad():
        coarse = g(latents_for(g, state), psi=state.truncation, offset_scale=state.offset_scale,
                   noise_mode="const", stop_at=16)
    assert coarse.shape[-1] == 16
    expected = to_uint8(F.interpolate(coarse, size=full.image.shape[:2], mode="bilinear", align_corners=False))[0]
    assert np.array_equal(frame.image, expected)
    assert not np.array_equal(frame.image, full.image)
    assert set(frame.offsets) == {"8.0", "8.1"}  # the MTM layers are below the preview size


def test_a_drag_shows_previews_then_the_full_frame(qtbot, make_window, tiny_checkpoints):
    path, g = tiny_checkpoints["rooms"]
    w = make_window(path)
    w.preview_resolution = 16  # the tiny model is 32 px; the studio's default previews above 64
    canvas, vp = w.canvas, w.canvas.viewport()
    obj = w.document.state.objects[0]
    start = widget_point(canvas, *obj.center)
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    qtbot.mouseMove(vp, start + QPoint(12, 6))
    moved = w.document.state
    assert moved.objects[0].center != obj.center
    # While the button is down: the preview first, then (the mouse resting) the full frame.
    qtbot.waitUntil(lambda: canvas.frame_state == moved, timeout=WAIT_MS)
    shown = [(canvas.frame.preview, shown_image(w).copy())]
    qtbot.waitUntil(lambda: canvas.frame_state == moved and not canvas.frame.preview, timeout=WAIT_MS)
    assert canvas.dragging
    if shown[0][0]:  # the preview was on screen (unless the full frame overtook it)
        assert np.array_equal(shown[0][1], render(g, moved, preview=16).image)
    assert_shows_render_of(w, g, moved)
    # Another move, and the release: previews during the drag, the full frame at release.
    previews = []
    w.frameShown.connect(lambda _: previews.append(canvas.frame.preview))
    end = start + QPoint(30, 20)
    qtbot.mouseMove(vp, end)
    qtbot.waitUntil(lambda: len(previews) > 0, timeout=WAIT_MS)
    assert previews[0], "a frame rendered during the drag is a preview"
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)
    final = w.document.state
    qtbot.waitUntil(lambda: canvas.frame_state == final and not canvas.frame.preview, timeout=WAIT_MS)
    assert_shows_render_of(w, g, final)
    assert w.document.undo_stack.count() == 1


def test_a_slow_preview_stops_one_resolution_earlier_next_time(qtbot, make_window, tiny_checkpoints):
    path, g = tiny_checkpoints["rooms"]
    w = make_window(path)
    w.preview_resolution, w.preview_min = 16, 8
    w.preview_budget_ms = 0.0  # every preview is "too slow" for this test
    w._full_timer.setInterval(10_000)  # no full frame while the button is down: the previews stay
    canvas, vp = w.canvas, w.canvas.viewport()
    start = widget_point(canvas, *w.document.state.objects[0].center)
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    qtbot.mouseMove(vp, start + QPoint(10, 0))
    first = w.document.state
    qtbot.waitUntil(lambda: canvas.frame_state == first, timeout=WAIT_MS)
    assert canvas.frame.preview and np.array_equal(shown_image(w), render(g, first, preview=16).image)
    qtbot.mouseMove(vp, start + QPoint(20, 0))
    second = w.document.state
    qtbot.waitUntil(lambda: canvas.frame_state == second, timeout=WAIT_MS)
    assert canvas.frame.preview and np.array_equal(shown_image(w), render(g, second, preview=8).image)
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start + QPoint(20, 0))
    qtbot.waitUntil(lambda: canvas.frame_state == second and not canvas.frame.preview, timeout=WAIT_MS)
    assert_shows_render_of(w, g, second)


# ---- 3. missing system libraries: a message and exit code 2, not Qt's abort ------------
def fake_xcb_plugin(folder: Path) -> Path:
    """A copy of PySide6's xcb plugin whose first Qt library is renamed to one that exists
    nowhere (same length, so the ELF stays valid): to the loader, a missing library."""
    from app.platform_check import find_xcb_plugin

    real = find_xcb_plugin({})
    if real is None or not sys.platform.startswith("linux") or shutil.which("ldd") is None:
        pytest.skip("needs Linux, ldd and PySide6's xcb plugin")
    data = real.read_bytes()
    assert b"libQt6XcbQpa.so.6" in data
    platforms = folder / "plugins" / "platforms"
    platforms.mkdir(parents=True)
    (folder / "lib").symlink_to(real.parent.parent.parent / "lib")  # its RUNPATH, $ORIGIN/../../lib
    fake = platforms / real.name
    fake.write_bytes(data.replace(b"libQt6XcbQpa.so.6", b"libxcb-zzzzz.so.6"))
    return fake


def test_missing_xcb_libraries_are_named_with_their_packages(tmp_path):
    fake = fake_xcb_plugin(tmp_path)
    env = {**os.environ, "QT_QPA_PLATFORM": "xcb", "QT_QPA_PLATFORM_PLUGIN_PATH": str(fake.parent),
           "PYTHONPATH": str(REPO), "DISPLAY": ":0"}
    run = subprocess.run([sys.executable, "-m", "app.studio"], env=env, capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert run.returncode == 2, run.stderr
    assert str(fake) in run.stderr and "libxcb-zzzzz.so.6" in run.stderr
    assert "sudo apt install" in run.stderr and "libxcb-zzzzz6" in run.stderr
    assert "Could not load the Qt platform plugin" not in run.stderr  # we spoke before Qt could abort


def test_the_check_is_for_xcb_on_linux_only():
    from app.platform_check import check_xcb, debian_package, wants_xcb

    assert wants_xcb({}, "linux") and wants_xcb({"QT_QPA_PLATFORM": "xcb"}, "linux")
    assert not wants_xcb({"QT_QPA_PLATFORM": "offscreen"}, "linux")
    assert not wants_xcb({"WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert not wants_xcb({}, "darwin") and not wants_xcb({}, "win32")
    assert check_xcb({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert [debian_package(lib) for lib in ("libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-cursor.so.0",
                                            "libxkbcommon-x11.so.0", "libxcb-render-util.so.0",
                                            "libglib-2.0.so.0")] == \
        ["libxcb-icccm4", "libxcb-keysyms1", "libxcb-cursor0", "libxkbcommon-x11-0", "libxcb-render-util0",
         "libglib2.0-0"]


# ---- 9. --help lists every subcommand; --version -------------------------------------
def test_help_lists_every_subcommand_and_version_works():
    from app.cli import SUBCOMMANDS

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "app.cli", "--help"], env=env, capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert out.returncode == 0
    for name in SUBCOMMANDS:
        assert f"steergan {name}" in out.stdout, name
    assert "--version" in out.stdout
    version = subprocess.run([sys.executable, "-m", "app.cli", "--version"], env=env, capture_output=True,
                             text=True, timeout=120, cwd=REPO)
    assert version.returncode == 0 and version.stdout.startswith("steergan ")
