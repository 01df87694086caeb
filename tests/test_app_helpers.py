"""Fixtures and helpers shared by the studio's tests (tests/test_app_*.py import them).

Every test gets its own QSettings folder and organisation, its own autosave, log and fit
store folders and the CPU, so nothing touches the user's settings or files. Windows run tiny
untrained generators (from checkpoints written to tmp_path), never the 128 px default.
"""
import numpy as np
import pytest
import torch
from PySide6.QtCore import QCoreApplication, QEvent, QPoint, QPointF, QSettings, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from models.io.checkpoint import save_checkpoint
from models.io.library import open_generator, untrained_generator
from models.render import render

WAIT_MS = 20000  # generous for a loaded CI machine; tests never sleep, they wait for events


@pytest.fixture
def studio_env(qapp, tmp_path, monkeypatch):
    from app.studio import configure_app

    monkeypatch.setenv("STEERGAN_AUTOSAVE_DIR", str(tmp_path / "autosave"))
    monkeypatch.setenv("STEERGAN_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("STEERGAN_FITS", str(tmp_path / "fits"))  # the fit store (app/fitting.py)
    monkeypatch.setenv("STEERGAN_DEVICE", "cpu")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    QCoreApplication.setOrganizationName("SteerGAN-tests")
    QCoreApplication.setApplicationName("studio-tests")
    configure_app(qapp)
    yield tmp_path
    # pytest-qt has closed the test's windows (deleteLater). Delete them now and collect
    # their garbage here, on the GUI thread (windows switch Python's automatic collector
    # off: see app/qt_compat.py); then the automatic collector is back for other tests.
    from app import qt_compat

    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    qt_compat.automatic_garbage_collection()


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory):
    """Tiny checkpoints (float32, so renders match exactly) and their reference generators.
    'rooms' has live MTM offsets, so switching them off visibly changes the image; 'clips'
    has the time capability (video)."""
    from conftest import with_live_offsets

    folder = tmp_path_factory.mktemp("app-checkpoints")
    out = {}
    for name, arch, live in (("rooms", "tiny-rooms", True), ("figures", "tiny-figures", False),
                             ("plain", "tiny-plain", False), ("clips", "tiny-clips", False)):
        g = untrained_generator(arch)
        if live:
            with_live_offsets(g, scale=0.5)
        path = folder / f"{name}.safetensors"
        save_checkpoint(path, g, {"name": f"tiny {name}"}, dtype=torch.float32)
        out[name] = (path, open_generator(path).generator)
    return out


@pytest.fixture
def make_window(qtbot, studio_env):
    """make_window(path=None, arch=None, worker=None): a shown MainWindow with its first frame."""
    from app.main_window import MainWindow

    def make(path=None, arch=None, worker=None, wait=True):
        window = MainWindow(worker=worker, autosave_dir=str(studio_env / "autosave"))
        # Closed (worker stopped, clean exit) at teardown, without the unsaved-changes question.
        qtbot.addWidget(window, before_close_func=forget_unsaved_edits)
        window.show()
        qtbot.waitExposed(window)
        if path is not None or arch is not None:
            window.files.open_checkpoint(path, arch=arch)
            if wait:
                wait_for_current_frame(qtbot, window)
        return window

    return make


def forget_unsaved_edits(window):
    """Mark the scene saved, so closing asks nothing (a question would wait for an answer)."""
    window.document.undo_stack.setClean()


def answer_modal_dialog(qtbot, answer, timeout=WAIT_MS):
    """Answer the next application-modal dialog (it runs its own event loop, so the test
    cannot: a timer polls for it). answer(dialog) presses its button. Returns a callable
    that says whether the dialog was found and answered."""
    from PySide6.QtCore import QTimer

    done = {"answered": False}
    deadline = QTimer()
    deadline.setSingleShot(True)
    deadline.start(timeout)

    def poll():
        dialog = QApplication.activeModalWidget()
        if dialog is not None and dialog.isVisible():
            done["answered"] = True
            answer(dialog)
        elif deadline.isActive():
            QTimer.singleShot(10, poll)

    QTimer.singleShot(0, poll)
    return lambda: done["answered"]


def wait_for_current_frame(qtbot, window, timeout=WAIT_MS):
    """Wait until the canvas shows the frame of the document's current state."""
    qtbot.waitUntil(lambda: window.document.state is not None and window.canvas.frame is not None
                    and window.canvas.frame_state == window.document.state, timeout=timeout)


def shown_image(window) -> np.ndarray:
    return window.canvas.image_item.image


def assert_shows_render_of(window, generator, state=None):
    state = window.document.state if state is None else state
    assert window.canvas.frame_state == state
    expected = render(generator, state).image
    assert np.array_equal(shown_image(window), expected)


def widget_point(canvas, x: float, y: float) -> QPoint:
    return canvas.to_widget(x, y).toPoint()


def drag(qtbot, canvas, start: QPoint, end: QPoint, steps: int = 8, modifier=Qt.KeyboardModifier.NoModifier):
    """A real mouse drag on the canvas viewport: press, several moves, release."""
    vp = canvas.viewport()
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, modifier, start)
    for i in range(1, steps + 1):
        t = i / steps
        qtbot.mouseMove(vp, QPoint(round(start.x() + (end.x() - start.x()) * t),
                                   round(start.y() + (end.y() - start.y()) * t)))
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, modifier, end)


def click(qtbot, canvas, pos: QPoint, modifier=Qt.KeyboardModifier.NoModifier):
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, modifier, pos)


def wheel(canvas, pos: QPoint, notches: int):
    """A real wheel event on the viewport (pytest-qt has no wheel helper)."""
    vp = canvas.viewport()
    event = QWheelEvent(QPointF(pos), QPointF(vp.mapToGlobal(pos)), QPoint(0, 0), QPoint(0, 120 * notches),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
                        False)
    QApplication.sendEvent(vp, event)


def free_point_in_block(canvas, block: int, grid: int) -> QPoint:
    """A point inside a block, as far from every handle as that block allows."""
    row, col = divmod(block, grid)
    best, best_d = None, -1.0
    for fy in np.linspace(0.15, 0.85, 8):
        for fx in np.linspace(0.15, 0.85, 8):
            p = canvas.to_widget((col + fx) / grid, (row + fy) / grid)
            h, _ = canvas.handle_at(p)
            d = min((np.hypot(p.x() - canvas.to_widget(*hd.center).x(), p.y() - canvas.to_widget(*hd.center).y())
                     for hd in canvas.handles.handles), default=1e9)
            if h is None and d > best_d:
                best, best_d = p.toPoint(), d
    assert best is not None, f"no free point in block {block}"
    return best


def render_failing_once(at_call: int = 2):
    """A worker render function that raises RuntimeError("injected failure") on its
    `at_call`-th call and renders normally otherwise."""
    from app.render_worker import default_render

    calls = {"n": 0}

    def fails_once(generator, state):
        calls["n"] += 1
        if calls["n"] == at_call:
            raise RuntimeError("injected failure")
        return default_render(generator, state)

    return fails_once

