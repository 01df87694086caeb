"""Edit a picture you bring (issue 26) in the studio: File > Open Image… and dropped pictures
are fitted on the worker, behind a progress dialog that can cancel; the fitted scene is one
undoable edit, rendered with its fit file, saved with it, and compared with its picture."""
import time

import numpy as np
import pytest
import torch
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox, QPushButton
from test_app_helpers import WAIT_MS, shown_image, wait_for_current_frame

from app import fitting
from models.document.scene import initial_state
from models.document.session import load_session
from models.io.checkpoint import save_checkpoint
from models.io.fit_file import fit_name, open_fit_for
from models.io.library import open_generator, untrained_generator
from models.io.picture import read_picture
from models.render import render

pytest_plugins = ["test_app_helpers"]  # the studio fixtures: studio_env, tiny_checkpoints, make_window

FIT_MS = 90000  # a fit of a few steps, on a loaded 2-core machine
SHORT = {"steps": 6, "seconds": 10.0, "tune_seconds": 1.5}  # a few steps, not the 25 s a user gets


@pytest.fixture(scope="module")
def trained_rooms(tmp_path_factory):
    """A tiny rooms checkpoint that says it was trained (fitting refuses untrained ones)."""
    path = tmp_path_factory.mktemp("fit-checkpoints") / "rooms.safetensors"
    save_checkpoint(path, untrained_generator("tiny-rooms"),
                    {"name": "tiny rooms", "trained_on": {"dataset": "rooms (test)"}}, dtype=torch.float32)
    loaded = open_generator(path)
    return path, loaded.generator, loaded.ref.sha256


@pytest.fixture
def picture(trained_rooms, tmp_path):
    """The generator's own sample, as a PNG the user brings."""
    _, g, _ = trained_rooms
    path = tmp_path / "picture.png"
    Image.fromarray(render(g, initial_state(g.config, 7)).image).save(path)
    return path


@pytest.fixture
def window(make_window, trained_rooms):
    w = make_window(trained_rooms[0])
    w.fitter.options = dict(SHORT)
    return w


def fitted(qtbot, w, start, timeout=FIT_MS) -> list:
    """Start a fit with `start()` and wait for it: [path, outcome]."""
    with qtbot.waitSignal(w.fitter.finished, timeout=timeout) as done:
        start()
    return done.args


def drop(window, path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    enter = QDragEnterEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(window, QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime,
                                              Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier))


def expected_image(state, generator, sha, near=None) -> np.ndarray:
    use, fit = open_fit_for(state, near, generator, sha)
    return render(use, state, fit=fit).image


def close_error_boxes(w) -> None:
    for box in w.findChildren(QMessageBox):
        box.close()


def test_open_image_fits_the_picture_as_one_undoable_edit(qtbot, window, trained_rooms, picture, studio_env,
                                                          monkeypatch):
    w, (_, g, sha) = window, trained_rooms
    w.autosaver.start()
    monkeypatch.setattr(fitting.QFileDialog, "getOpenFileName", lambda *a, **k: (str(picture), ""))
    before, count = w.document.state, w.document.undo_stack.count()
    assert not w.act_picture.isEnabled()
    assert fitted(qtbot, w, lambda: qtbot.keyClick(w, Qt.Key.Key_I, Qt.KeyboardModifier.ControlModifier)) == [
        str(picture), "fitted"]
    state = w.document.state
    assert state.fit is not None and state != before
    assert (studio_env / "fits" / fit_name(state.fit)).is_file()
    assert w.document.undo_stack.count() == count + 1 and w.document.undo_stack.text(count) == "Fit picture.png"
    assert w.isWindowModified() and "Fitted picture.png" in w.statusBar().currentMessage()
    wait_for_current_frame(qtbot, w)
    expected = expected_image(state, g, sha)
    assert np.array_equal(shown_image(w), expected)
    assert not np.array_equal(expected, render(g, state).image)  # the fitted styles are what is shown
    # Autosaved like any other edit.
    qtbot.waitUntil(lambda: w.autosaver.path.is_file() and load_session(w.autosaver.path)[0] == state,
                    timeout=WAIT_MS)

    # View > Show Fitted Picture: the picture, half transparent, over the canvas.
    original = read_picture(picture, g.config.resolution)
    for key in (Qt.Key.Key_H, Qt.Key.Key_G):  # the handles and the grid off: the pixels are the pictures'
        qtbot.keyClick(w, key)
    assert np.abs(w.canvas.grab_image_area(32).astype(float) - expected).mean() < 1
    assert w.act_picture.isEnabled() and not w.canvas.overlay_visible("picture")
    qtbot.keyClick(w, Qt.Key.Key_P)
    assert w.act_picture.isChecked() and w.canvas.overlay_visible("picture")
    assert np.array_equal(w.canvas.picture.image, original)
    over = w.canvas.grab_image_area(32).astype(float)
    assert np.abs(over - (0.5 * expected + 0.5 * original)).mean() < 1 < np.abs(over - expected).mean()
    qtbot.keyClick(w, Qt.Key.Key_P)
    assert not w.canvas.overlay_visible("picture")
    qtbot.keyClick(w, Qt.Key.Key_P)

    # One Ctrl+Z: the scene before, exactly; nothing to compare with there.
    qtbot.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert w.document.state == before and not w.act_picture.isEnabled() and w.canvas.picture.image is None
    wait_for_current_frame(qtbot, w)
    assert np.array_equal(shown_image(w), render(g, before).image)
    qtbot.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert w.document.state == state and w.act_picture.isEnabled()
    assert np.array_equal(w.canvas.picture.image, original)
    wait_for_current_frame(qtbot, w)
    assert np.array_equal(shown_image(w), expected)


def test_cancel_stops_the_fit_and_changes_nothing(qtbot, window, picture, studio_env):
    w = window
    w.fitter.options = {"steps": 100000, "seconds": 600.0}  # only Cancel ends it
    before, count = w.document.state, w.document.undo_stack.count()
    w.fitter.start(picture)
    dialog = w.fitter.progress
    assert dialog.isVisible() and dialog.windowModality() == Qt.WindowModality.WindowModal
    # The picture and the live reconstruction, the stage, step and PSNR.
    qtbot.waitUntil(lambda: not dialog.picture.pixmap().isNull() and not dialog.reconstruction.pixmap().isNull()
                    and dialog.step >= 10, timeout=FIT_MS)
    assert dialog.picture.pixmap().width() == 256 and "step" in dialog.label.text() and "s left" in dialog.label.text()
    assert "dB" in dialog.psnr.text()
    cancel = next(b for b in dialog.findChildren(QPushButton) if b.text() == "Cancel")
    with qtbot.waitSignal(w.fitter.finished, timeout=WAIT_MS) as done:
        clicked = time.monotonic()
        qtbot.mouseClick(cancel, Qt.MouseButton.LeftButton)
        assert dialog.label.text() == "Cancelling…" and not cancel.isEnabled()
    assert time.monotonic() - clicked < 10  # within a step (a tiny model's step is milliseconds)
    assert done.args == [str(picture), "cancelled"] and w.fitter.progress is None
    assert w.document.state == before and w.document.undo_stack.count() == count
    assert not w.isWindowModified() and "cancelled" in w.statusBar().currentMessage()
    assert not any((studio_env / "fits").glob("*"))  # no fit file
    qtbot.keyClick(w, Qt.Key.Key_N)  # the worker is free again
    wait_for_current_frame(qtbot, w)


def test_bad_pictures_and_generators_are_one_message_naming_the_file(qtbot, window, make_window, tiny_checkpoints,
                                                                    tmp_path, picture, monkeypatch):
    w = window
    before, count = w.document.state, w.document.undo_stack.count()
    text = tmp_path / "x.png"
    text.write_text("not a picture at all")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(picture.read_bytes()[:len(picture.read_bytes()) // 2])
    for path, words in ((text, "is not an image"), (truncated, "truncated")):
        assert fitted(qtbot, w, lambda p=path: w.fitter.start(p)) == [str(path), "failed"]
        title, message = w.last_error
        assert path.name in title and message.startswith(f"{path}: ") and words in message, message
        assert "\n" not in message
        close_error_boxes(w)
    monkeypatch.setenv("STEERGAN_D_BACKBONE", str(tmp_path / "no-backbone.safetensors"))
    assert fitted(qtbot, w, lambda: w.fitter.start(picture)) == [str(picture), "failed"]
    assert "no-backbone.safetensors" in w.last_error[1] and "backbone is missing" in w.last_error[1]
    close_error_boxes(w)
    assert w.document.state == before and w.document.undo_stack.count() == count and not w.isWindowModified()
    assert not any((tmp_path / "fits").glob("*"))

    # Generators that cannot be fitted: said at once, nothing starts.
    for make, words in ((lambda: make_window(arch="tiny-rooms"), "untrained architecture"),
                        (lambda: make_window(tiny_checkpoints["rooms"][0]), "no training record"),
                        (lambda: make_window(tiny_checkpoints["clips"][0]), "makes video")):
        other = make()
        assert not other.fitter.start(picture) and other.fitter.progress is None
        assert str(picture) in other.last_error[1] and words in other.last_error[1], other.last_error


def test_a_saved_session_takes_its_fit_file_along(qtbot, window, make_window, trained_rooms, picture, tmp_path,
                                                  monkeypatch):
    w, (checkpoint, g, sha) = window, trained_rooms
    w.act_tune.setChecked(True)  # pivotal tuning: the fit file carries tuned weights
    assert fitting.PictureFitter.tune()
    assert fitted(qtbot, w, lambda: drop(w, picture)) == [str(picture), "fitted"]  # a drop starts the fit
    state = w.document.state
    use, fit = open_fit_for(state, None, g, sha)
    assert fit.tuned and use is not g
    wait_for_current_frame(qtbot, w)
    shown = shown_image(w).copy()
    assert np.array_equal(shown, render(use, state, fit=fit).image)

    folder = tmp_path / "elsewhere"
    folder.mkdir()
    session = folder / "scene.json"
    assert w.files.save_session(session)
    beside = folder / fit_name(state.fit)
    assert beside.is_file() and beside.read_bytes() == (tmp_path / "fits" / fit_name(state.fit)).read_bytes()
    assert load_session(session)[0] == state and w.last_error is None

    # A fresh window on another machine: no fit store, only the session's folder.
    monkeypatch.setenv("STEERGAN_FITS", str(tmp_path / "empty-store"))
    w2 = make_window(arch="tiny-plain")
    w2.files.open_session(session)
    qtbot.waitUntil(lambda: w2.document.state == state, timeout=WAIT_MS)
    wait_for_current_frame(qtbot, w2)
    assert np.array_equal(shown_image(w2), shown)
    assert not w2.act_picture.isEnabled()  # the picture itself stayed with the first studio

    # The session without its fit file still opens: rendered without the fit, and said once.
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "scene.json").write_bytes(session.read_bytes())  # (it names the checkpoint by its absolute path)
    w3 = make_window(checkpoint)
    w3.files.open_session(lone / "scene.json")
    qtbot.waitUntil(lambda: w3.document.state == state, timeout=WAIT_MS)
    wait_for_current_frame(qtbot, w3)
    assert np.array_equal(shown_image(w3), render(g, state).image)
    message = w3.statusBar().currentMessage()
    assert fit_name(state.fit) in message and "without the picture it was fitted to" in message


def test_a_picture_given_at_start_up_is_fitted_once_the_default_checkpoint_is_open(qtbot, make_window, trained_rooms,
                                                                                  picture, monkeypatch):
    """`steergan picture.png`: the default checkpoint opens, then the picture is fitted."""
    from models.io import bundled

    monkeypatch.setattr(bundled, "DEFAULT_CHECKPOINTS", (trained_rooms[0],))
    w = make_window()
    w.fitter.options = dict(SHORT)
    assert fitted(qtbot, w, lambda: w.files.open_path(picture, fallback=True)) == [str(picture), "fitted"]
    assert w.document.info.path == str(trained_rooms[0]) and w.document.state.fit is not None
    assert w.document.undo_stack.count() == 1  # the fit, over the checkpoint's first scene
